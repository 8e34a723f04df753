#!/usr/bin/perl

# ldseg_tap file [max_size=size]: every POST to LaunchDarkly, as it
# completes, is appended as one JSON line (time, payload ID, client-side
# ID, HTTP status, attempt, error, the events sent), by the thread pool;
# past max_size the file becomes file.1 (one old file kept); 0600.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(13);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_tap %%TESTDIR%%/tap.ndjson max_size=8k;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id TAP-ID;
        }
    }
}
EOF

$mock->script(default => { status => 202 }, steps => [ { status => 503 } ]);

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2024-02-29T12:00:00Z';
my $dir = $t->testdir;

sub track {
    my ($event) = @_;
    return ($t->http_post('/v1/track',
        $J->encode({ userId => 'u', event => $event, timestamp => $TS })))[0];
}

sub taps {
    my @l;
    for my $f ("$dir/tap.ndjson.1", "$dir/tap.ndjson") {
        open my $fh, '<', $f or next;
        push @l, <$fh>;
        close $fh;
    }
    return @l;
}

track('T-1');
is($mock->wait_events(1, 15), 1, 'T-1 delivered after a 503');
ok(Test::Ldseg::wait_for(sub { taps() >= 2 }, 10), 'two lines in the tap');

my @l = map { Test::Ldseg::json($_) } taps();
is(scalar(grep { !$_ } @l), 0, 'every line is JSON');
my ($fail, $ok) = @l;
$fail ||= {};
$ok ||= {};

is($fail->{status} . ' ' . $ok->{status}, '503 202', 'the 503, then the 202');
is($fail->{payload_id}, $ok->{payload_id}, 'the same payload ID twice');
is($fail->{attempt} . ' ' . $ok->{attempt}, '1 2', 'attempts 1 and 2');
like($fail->{error} // '', qr/503/, 'the failed POST has its error');
my ($post) = grep { $_->{status} eq '202' } $mock->posts;
is($ok->{payload_id}, $post->{headers}{'x-launchdarkly-payload-id'},
   'the payload ID LaunchDarkly got');
is($J->encode($ok->{events}), $J->encode($post->{events}),
   'the events LaunchDarkly got');
ok($ok->{client_side_id} eq 'TAP-ID'
   && $ok->{time} =~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
   'client-side ID and time');

# past max_size: one old file kept

track("R-$_-" . ('x' x 300)) for 1 .. 40;
is($mock->wait_events(41, 20), 41, 'forty more delivered');
sub lines_in {
    my ($f) = @_;
    open my $fh, '<', $f or return ();
    my @l = <$fh>;
    return @l;
}

# a file goes over max_size only with its first line (a POST may be larger)

ok(Test::Ldseg::wait_for(sub {
       my @cur = lines_in("$dir/tap.ndjson");
       -s "$dir/tap.ndjson.1" && @cur
       && (-s "$dir/tap.ndjson" <= 8192 || @cur == 1)
       && ((stat "$dir/tap.ndjson")[2] & 0777) == 0600 }, 10),
   'rotated: tap.ndjson.1 and a new tap.ndjson within max_size, 0600')
    or diag(join ' ', map { "$_:" . (-s "$dir/$_" // 'none') }
                      qw(tap.ndjson tap.ndjson.1));
is(scalar(grep { !Test::Ldseg::json($_) } taps()), 0,
   'rotated: every line whole');

###############################################################################
