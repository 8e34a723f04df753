#!/usr/bin/perl

# Refused client-side IDs (LaunchDarkly answers 401) share ONE cap: their
# events together hold at most an eighth of the zone, however many refused
# IDs there are; beyond that their clients get 503 (queue_full) while a
# client-side ID LaunchDarkly accepts goes on being accepted and delivered.
# A timeout or a connection error from LaunchDarkly does not lift the
# refused state (only a 2xx does).

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;
use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(12);
my $mock = $t->mock(steps => [
    { path => '/events/bulk/BAD\d+$', status => 401, times => 1000000 } ]);

# 1m (nginx accepts down to 8 pages, 32k): an eighth is 128 KB, about 60
# events of 2 KB; today's cap is per ID, and four or five refused IDs fill
# the zone

my $ZONE = 1024 * 1024;

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
    ldseg_retry_max_delay 1s;
    ldseg_timeout 1s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id $arg_id;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2016-05-04T03:02:01.000Z';
my $PAD = 'p' x 2000;

sub track {
    my ($id, $key) = @_;
    my ($code, $h, $body) = $t->http_post("/v1/track?id=$id", $J->encode({
        userId => "u-$key", event => $key, timestamp => $TS,
        properties => { pad => $PAD } }));
    return ($code, $h, $body);
}

my (@good, $good_other);
my $gn = 0;

# a few events for GOOD; every one must be accepted; returns the first
# other answer

sub good {
    my ($n) = @_;
    my $bad;
    for (1 .. $n) {
        my $key = 'G-' . ++$gn;
        my ($c, undef, $b) = track('GOOD', $key);
        if ($c == 200) {
            push @good, $key;
        } else {
            $bad //= "$key: $c $b";
        }
    }
    $good_other //= $bad;
    return $bad // '';
}

sub status_line {
    my $s = $t->status || {};
    return sprintf 'queue.bytes=%s events=%s', $s->{queue}{bytes} // '?',
        $s->{queue}{events} // '?';
}

# every BAD id gets its 401 first: LaunchDarkly refuses all ten

my @bad_ids = map { "BAD$_" } 1 .. 10;
my %accepted;
my $other = '';

for my $id (@bad_ids) {
    my ($c) = track($id, "$id-0");
    $accepted{$id}++ if $c == 200;
}
ok(Test::Ldseg::wait_for(sub {
       my %seen = map { $_->{client_id} => 1 }
                  grep { $_->{status} eq '401' } $mock->posts;
       !grep { !$seen{$_} } @bad_ids }, 10),
   'LaunchDarkly answered 401 for each of the ten refused IDs');
sleep 0.3;

# events for a refused ID until it gets 503

sub fill {
    my ($id) = @_;
    for my $i (1 .. 100) {
        my ($c, $h, $b) = track($id, "$id-$i");
        if ($c == 200) {
            $accepted{$id}++;
            next;
        }
        $other ||= "$id: $c $b" if $c != 503;
        return $c;
    }
    return 200;
}

# BAD1 alone up to the cap (an eighth of the zone, per ID or in total)

is(fill('BAD1'), 503, 'BAD1: 503 once its events fill the cap');
good(3);

# a connection reset, then a timeout, for BAD1: still refused (two resets:
# libcurl silently retries a request once when a reused connection is
# reset; the second, on a fresh connection, reaches ldseg)

$mock->script(steps => [
    { path => '/events/bulk/BAD1$', reset => 1, times => 2 },
    { path => '/events/bulk/BAD1$', hang => 1 },
    { path => '/events/bulk/BAD\d+$', status => 401, times => 1000000 } ]);

my $reset;
Test::Ldseg::wait_for(sub {
    $reset = grep { $_->{client_id} eq 'BAD1' && $_->{status} eq 'reset' }
             $mock->posts;
    $reset >= 2 }, 10);
sleep 0.1;
my @c = map { (track('BAD1', "BAD1-r$_"))[0] } 1 .. 5;
is("@c", '503 503 503 503 503',
   'BAD1 after a connection reset: still 503'
   . ($reset >= 2 ? '' : ' (no reset seen)'));

my $hung;
Test::Ldseg::wait_for(sub {
    ($hung) = grep { $_->{client_id} eq 'BAD1' && $_->{status} eq 'aborted' }
              $mock->posts;
    $hung }, 10);
sleep 0.1;
@c = map { (track('BAD1', "BAD1-t$_"))[0] } 1 .. 5;
is("@c", '503 503 503 503 503',
   'BAD1 after a timeout: still 503' . ($hung ? '' : ' (no timeout seen)'));
$accepted{BAD1} += grep { $_ == 200 } @c;

# the other nine, GOOD in between

for my $id (@bad_ids[1 .. $#bad_ids]) {
    fill($id);
    good(3);
}

is($other, '', 'refused IDs: only 200 and 503');
is($good_other // '', '', 'GOOD accepted throughout ('
   . scalar(@good) . ' events)');

# the size of one event as LaunchDarkly sees it

my ($one) = grep { @{ $_->{events} || [] } == 1 } $mock->posts;
my $ev_len = $one ? length($one->{body}) - 2 : length($PAD) + 200;

my $total = 0;
$total += $_ for values %accepted;
note('accepted per refused ID: '
     . join(' ', map { "$_=" . ($accepted{$_} // 0) } @bad_ids));

cmp_ok($total * $ev_len, '<=', $ZONE / 8 + $ev_len,
       "refused IDs together: $total events of $ev_len bytes, at most an "
       . 'eighth of the zone');

# GOOD drains; what is left are the refused IDs' events

my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@good,
                                    match => qr/^G-/, timeout => 15);
is(scalar @{ $r->{missing} }, 0, 'GOOD: every accepted event delivered');

my $s;
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} <= $total }, 5);
cmp_ok($s && $s->{queue}{bytes}, '<=', $ZONE / 8 + $ev_len,
       'status: queue.bytes at most an eighth of the zone ('
       . status_line() . ')');

# the cap holds for every refused ID

@c = map { (track($_, "$_-x"))[0] } @bad_ids;
is("@c", join(' ', ('503') x 10), 'every refused ID gets 503 now');

# GOOD still goes on

is(good(5), '', 'GOOD accepted at the end');
$r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@good,
                                 match => qr/^G-/, timeout => 15);
is(scalar @{ $r->{missing} }, 0, 'GOOD: delivered at the end');

###############################################################################
