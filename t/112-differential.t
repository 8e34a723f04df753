#!/usr/bin/perl

# The differential test through nginx: requests of t/differential/cases.json
# (seeded random Segment messages with what Segment's own destination makes
# of each, or the deliberate difference of README.md each falls under, see
# t/differential/rules.js) are POSTed to their endpoints until at least 1000
# messages have gone through; every single-message request must get the
# reference's status, and LaunchDarkly must receive exactly the expected
# events, as a multiset.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;
use Time::HiRes qw(time);

###############################################################################

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

my $file = $ENV{LDSEG_DIFF_CASES} // "$FindBin::Bin/differential/cases.json";
my $min = $ENV{LDSEG_DIFF_MESSAGES} // 1000;

open my $fh, '<', $file or die "$file: $!";
my $cases = do { local $/; JSON::PP->new->utf8->allow_bignum->decode(<$fh>) };
close $fh;

my @use;
my $messages = 0;
for my $c (@$cases) {
    last if $messages >= $min;
    push @use, $c;
    $messages += @{ $c->{messages} };
}

my $t = Test::Ldseg->new()->plan(4);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 16m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id CLIENT-SIDE-ID;
        }
    }
}
EOF

$t->run;

###############################################################################

my (@want, @bad);
my %rules;

for my $c (@use) {
    my $body = $c->{raw};
    utf8::encode($body);

    my $t0 = time;
    my ($code, undef, $raw) = $t->http_post($c->{path}, $body,
                                            'Content-Type' => 'application/json');
    my $t1 = time;

    my @ok = ref $c->{status} ? @{ $c->{status} } : ($c->{status});
    push @bad, "$c->{id}: status $code, expected @ok: $raw"
        unless grep { $_ == $code } @ok;

    my $i = 0;
    for my $m (@{ $c->{messages} }) {
        $rules{ $m->{rule} // '(none)' }++;
        push @want, map { { case => "$c->{id}\[$i]", event => Test::Ldseg::canon($_),
                            now => $m->{now}, t0 => $t0, t1 => $t1 } }
                    @{ $m->{events} };
        $i++;
    }
}

ok($messages >= $min, "$messages messages in " . scalar(@use) . ' requests ('
   . join(', ', map { "$_ $rules{$_}" } sort keys %rules) . ')');

is(scalar(@bad), 0, 'every single-message request got the reference\'s status')
    or diag(join "\n", @bad[0 .. ($#bad > 19 ? 19 : $#bad)]);

$mock->wait_events(scalar @want, 30);
select undef, undef, undef, 1;      # let extra events show up

my ($missing, $extra) = Test::Ldseg::match_events(\@want, [ $mock->posts ]);
my @m = map { @{ $missing->{$_} } } sort keys %$missing;

is(scalar(@m), 0, scalar(@want) . ' events delivered as the reference sends them')
    or diag(join "\n", map { "missing ($_->{case}): "
                             . Test::Ldseg::canon_text($_->{event}) }
                       @m[0 .. ($#m > 19 ? 19 : $#m)]);

is(scalar(@$extra), 0, 'no unexpected or duplicated events')
    or diag(join "\n", map { 'extra: ' . Test::Ldseg::canon_text($_->{event}) }
                       @$extra[0 .. ($#$extra > 19 ? 19 : $#$extra)]);

###############################################################################
