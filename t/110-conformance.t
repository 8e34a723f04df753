#!/usr/bin/perl

# Conformance with Segment's "LaunchDarkly (Actions)" destination: every case
# of t/conformance/cases.json and batches.json is POSTed to its endpoint, and
# the answers and the LaunchDarkly events are checked as
# t/conformance/README.md ("How a case is checked") says: the expected status
# and answer shape per case, then all events as a multiset (key order
# ignored, numbers as doubles, strings exact, creationDate within 120 s of
# the processing time for "now" cases), and the headers of every POST.

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

my $dir = "$FindBin::Bin/conformance";

sub load {
    my ($name) = @_;
    open my $fh, '<', "$dir/$name" or die "$dir/$name: $!";
    local $/;
    my $v = JSON::PP->new->utf8->decode(<$fh>);
    close $fh;
    return $v;
}

my $cases = load('cases.json')->{cases};
my $expected = load('expected.json')->{results};
my $batches = load('batches.json')->{batches};

my %exp = map { $_->{id} => $_ } @$expected;

my $t = Test::Ldseg->new()->plan(2 * @$cases + 3 * @$batches + 3);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id CLIENT-SIDE-ID;

            # the reference is the destination: Segment's API corrects
            # clock skew before it (p005 and pb01 have a sentAt)
            ldseg_clock_skew off;
        }
    }
}
EOF

$t->run;

###############################################################################

# expected events: { case, event (canon), now, t0, t1 }

my @want;

sub check_answer {
    my ($id, $status, $code, $raw) = @_;

    my $j = Test::Ldseg::json($raw);
    my @ok = ref $status ? @$status : ($status);

    return "status $code, expected @ok" unless grep { $_ == $code } @ok;
    return "answer is not a JSON object" unless ref $j eq 'HASH';
    return "success is not a boolean"
        unless defined $j->{success} && JSON::PP::is_bool($j->{success});

    if ($code == 200) {
        return "success is not true" unless $j->{success};
    } else {
        return "success is not false" if $j->{success};
        return "no code" unless defined $j->{code} && !ref $j->{code}
                                && length $j->{code};
        return "no message" unless defined $j->{message}
                                   && length $j->{message};
    }

    return '';
}

sub send_case {
    my ($c) = @_;

    my $body = defined $c->{raw} ? $c->{raw}
                                 : Test::Ldseg::encode_json_exact($c->{body});
    my @h = ('Content-Type' => $c->{ctype});
    push @h, Authorization => $c->{auth} if defined $c->{auth};

    my $t0 = time;
    my ($code, undef, $raw) = $t->http_post($c->{path}, $body, @h);
    my $t1 = time;

    return ($code, $raw, $t0, $t1);
}

for my $c (@$cases) {
    my $e = $exp{ $c->{id} } or die "no expectation for $c->{id}";
    my ($code, $raw, $t0, $t1) = send_case($c);

    my $problem = check_answer($c->{id}, $e->{status}, $code, $raw);
    is($problem, '', "$c->{id} ($c->{cat}): answer")
        or diag("answer: $code $raw");

    push @want, map { { case => $c->{id}, event => Test::Ldseg::canon($_),
                        now => $e->{now}, t0 => $t0, t1 => $t1 } }
                @{ $e->{events} };
}

for my $b (@$batches) {
    my ($code, $raw, $t0, $t1) = send_case($b);

    is(check_answer($b->{id}, $b->{status}, $code, $raw), '',
       "$b->{id}: answer") or diag("answer: $code $raw");

    # rejected: messages with an error that the module must refuse (track
    # and alias); identify/page/screen/group are skipped, not rejected

    my @rej;
    for my $x (@{ $b->{expected} }) {
        my $type = $b->{body}{batch}[ $x->{index} ]{type} // '';
        push @rej, $x->{index}
            if defined $x->{error} && $type =~ /^(track|alias)$/;
        push @want, map { { case => "$b->{id}\[$x->{index}]",
                            event => Test::Ldseg::canon($_),
                            now => $x->{now}, t0 => $t0, t1 => $t1 } }
                    @{ $x->{events} };
    }

    my $j = Test::Ldseg::json($raw) || {};
    my @got = map { $_->{index} // '?' } @{ $j->{rejected} || [] };
    is("@got", "@rej", "$b->{id}: rejected indexes");
    ok(!grep({ !defined $_->{code} || !defined $_->{message} }
             @{ $j->{rejected} || [] }),
       "$b->{id}: rejections carry code and message");
}

###############################################################################

# collect what LaunchDarkly got

my $n = @want;
my $count = $mock->wait_events($n, 20);
select undef, undef, undef, 1;      # let extra events show up

my @posts = $mock->posts;
my ($missing, $extra) = Test::Ldseg::match_events(\@want, \@posts);
my %missing = %$missing;

# one result per case, events included

my %case_events;
push @{ $case_events{ $_->{case} } }, $_ for @want;

for my $c (@$cases) {
    my $m = $missing{ $c->{id} } || [];
    my $total = @{ $case_events{ $c->{id} } || [] };
    ok(!@$m, "$c->{id}: $total event(s) delivered as expected")
        or diag(join "\n", map { 'missing: '
                                 . Test::Ldseg::canon_text($_->{event}) } @$m);
}

my @bm = map { @{ $missing{$_} } } grep { /^pb/ } sort keys %missing;
ok(!@bm, 'batch events delivered as expected')
    or diag(join "\n", map { "missing ($_->{case}): "
                             . Test::Ldseg::canon_text($_->{event}) } @bm);

ok(!@$extra, 'no unexpected or duplicated events')
    or diag(join "\n", map { 'extra: ' . Test::Ldseg::canon_text($_->{event}) }
                       @$extra);

# every POST

my @bad;
my %ids;
for my $p (@posts) {
    my $h = $p->{headers};
    my @why;
    push @why, "method $p->{method}" if $p->{method} ne 'POST';
    push @why, "path $p->{path}"
        if $p->{path} ne '/events/bulk/CLIENT-SIDE-ID';
    push @why, "content-type " . ($h->{'content-type'} // 'none')
        if ($h->{'content-type'} // '') ne 'application/json';
    push @why, "schema " . ($h->{'x-launchdarkly-event-schema'} // 'none')
        if ($h->{'x-launchdarkly-event-schema'} // '') ne '4';
    push @why, "user-agent " . ($h->{'user-agent'} // 'none')
        if ($h->{'user-agent'} // '') !~ m{^ldseg/\d+\.\d+\.\d+$};
    my $pid = $h->{'x-launchdarkly-payload-id'} // '';
    push @why, "payload id '$pid'" if $pid !~
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
    push @why, "duplicate payload id $pid" if $ids{$pid}++;
    push @why, "body is not a JSON array" unless ref $p->{events} eq 'ARRAY';
    push @bad, "POST #$p->{seq}: @why" if @why;
}

ok(@posts && !@bad, scalar(@posts) . ' POSTs with the LaunchDarkly headers')
    or diag(join "\n", @bad);

###############################################################################
