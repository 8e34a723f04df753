#!/usr/bin/perl

# ldseg_status per destination: for each client-side ID the messages of its
# requests (received = accepted + rejected), its events queued, delivered,
# failed, dead-lettered, POSTs and retries, the oldest queued event's age,
# the last HTTP status and its time, the last error text, and whether it is
# paused by Retry-After or refused; the same in Prometheus with a
# client_side_id label, accepted by "promtool check metrics"; the counters
# survive a reload and an empty destination keeps them.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use File::Spec;
use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(41);
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
    ldseg_dead_letter %%TESTDIR%%/dead.jsonl;
    ldseg_dead_letter_after 2;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /good/ {
            ldseg on;
            ldseg_client_side_id GOOD-ID;
        }

        location /slow/ {
            ldseg on;
            ldseg_client_side_id SLOW-ID;
        }

        location /bad/ {
            ldseg on;
            ldseg_client_side_id BAD-ID;
        }

        location /poison/ {
            ldseg on;
            ldseg_client_side_id POISON-ID;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

# SLOW-ID: 503 with Retry-After; BAD-ID: 401 (refused); POISON-ID: 400 on
# every attempt (dead letter after 2); GOOD-ID: 202

$mock->script(default => { status => 202 }, steps => [
    { status => 503, retry_after => 60, path => 'SLOW-ID', times => 1000 },
    { status => 401, path => 'BAD-ID', times => 1000 },
    { status => 400, path => 'POISON-ID', times => 1000 },
]);

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2024-02-29T12:00:00Z';

sub track {
    my ($where, $event) = @_;
    return ($t->http_post("/$where/v1/track",
        $J->encode({ userId => 'u', event => $event, timestamp => $TS })))[0];
}

sub dests {
    my ($s) = @_;
    return { map { $_->{client_side_id} => $_ }
             @{ ($s || {})->{destinations} || [] } };
}

my $start = time;

# GOOD: 3 tracks, and a batch of 2 valid and 1 invalid message
track('good', "G-$_") for 1 .. 3;
my ($code) = $t->http_post('/good/v1/batch', $J->encode({ batch => [
    { type => 'track', userId => 'u', event => 'G-4', timestamp => $TS },
    { type => 'track', userId => 'u', event => 'G-5', timestamp => $TS },
    { type => 'track', userId => 'u' },
] }));
is($code, 200, 'batch with one invalid message: 200');

track('slow', "S-$_") for 1 .. 2;
track('bad', 'B-1');
track('poison', 'P-1');

ok(Test::Ldseg::wait_for(sub {
       my $d = dests($t->status);
       ($d->{'GOOD-ID'}{delivered} // 0) == 5
       && ($d->{'SLOW-ID'}{last_status} // 0) == 503
       && ($d->{'BAD-ID'}{last_status} // 0) == 401
       && ($d->{'POISON-ID'}{dead_lettered} // 0) == 1
       && !grep { $_->{queue}{in_flight} } values %$d }, 20),
   'every destination answered');

my $s = $t->status;
my $d = dests($s);

is(join(',', sort keys %$d), 'BAD-ID,GOOD-ID,POISON-ID,SLOW-ID',
   'one entry per client-side ID');
is($d->{'GOOD-ID'}{events_url}, $mock->url, 'events_url');

my $g = $d->{'GOOD-ID'} || {};
is(join(',', map { "$_=" . ($g->{$_} // 'undef') }
         qw(received accepted rejected queued delivered failed)),
   'received=6,accepted=5,rejected=1,queued=5,delivered=5,failed=0',
   'GOOD: messages and events');
is($g->{last_status}, 202, 'GOOD: last status 202');
ok($g->{last_status_time} >= $start && $g->{last_status_time} <= time + 1,
   'GOOD: last status time');
ok(!defined $g->{last_error} && !defined $g->{paused}, 'GOOD: no error, '
   . 'not paused');
is($g->{queue}{events}, 0, 'GOOD: queue empty');
ok(!defined $g->{queue}{oldest_age_ms}, 'GOOD: no oldest event');

my $sl = $d->{'SLOW-ID'} || {};
is($sl->{queue}{events}, 2, 'SLOW: 2 events queued');
ok(defined $sl->{queue}{oldest_age_ms} && $sl->{queue}{oldest_age_ms} > 0,
   'SLOW: oldest queued event has an age');
is($sl->{paused}, 'retry_after', 'SLOW: paused by Retry-After');
cmp_ok($sl->{paused_ms} // 0, '>', 30000, 'SLOW: paused for the Retry-After');
like($sl->{last_error} // '', qr/503/, 'SLOW: last error names the status');
cmp_ok($sl->{failed}, '>=', 2, 'SLOW: failed events counted');
is($sl->{delivered}, 0, 'SLOW: nothing delivered');

my $b = $d->{'BAD-ID'} || {};
is($b->{paused}, 'refused', 'BAD: paused as refused');
is($b->{refused}, 401, 'BAD: refused with 401');

my $p = $d->{'POISON-ID'} || {};
is($p->{dead_lettered}, 1, 'POISON: dead-lettered');
is($p->{posts}, 2, 'POISON: two POSTs');
is($p->{retries}, 1, 'POISON: one of them a retry');
is($p->{last_status}, 400, 'POISON: last status 400');

# each destination says its kind; no write key for LaunchDarkly's

is(join(',', map { ($_->{kind} // 'none') . '/'
                   . (defined $_->{write_key} ? 'key' : 'null') }
             @{ $s->{destinations} }),
   join(',', ('launchdarkly/null') x 4),
   'per destination: kind "launchdarkly", write_key null');

# everything adds up, per destination and in total

is(join(',', map { $_->{client_side_id} }
         grep { $_->{received} != $_->{accepted} + $_->{rejected} }
         values %$d), '', 'per destination: received = accepted + rejected');
is($s->{received}, $s->{accepted} + $s->{rejected},
   'total: received = accepted + rejected');

my %sum;
for my $k (qw(received accepted rejected queued delivered failed
              dead_lettered)) {
    $sum{$k} += $_->{$k} for values(%$d), $s->{retired_destinations};
}
is(join(',', map { "$_=$sum{$_}" } sort keys %sum),
   join(',', map { "$_=$s->{$_}" } sort keys %sum),
   'destinations and retired add up to the totals');

# Prometheus: one sample per destination, labelled, as in the JSON

my ($pcode, undef, $prom) = $t->http_get('/status?format=prometheus');
is($pcode, 200, 'prometheus: 200');

my %sample;
for (split /\n/, $prom) {
    $sample{"$1|$2"} = $3
        if /^(ldseg_destination_\w+)\{kind="launchdarkly",
              client_side_id="([^"]+)",[^}]*\}\ (\S+)$/x;
}
is($sample{'ldseg_destination_delivered_total|GOOD-ID'}, 5,
   'prometheus: GOOD delivered');
is($sample{'ldseg_destination_queue_events|SLOW-ID'}, 2,
   'prometheus: SLOW queue events');
is($sample{'ldseg_destination_last_status|BAD-ID'}, 401,
   'prometheus: BAD last status');
like($prom, qr/^ldseg_destination_paused\{kind="launchdarkly",
               client_side_id="SLOW-ID",[^}]*,reason="retry_after"\}\ 1$/mx,
     'prometheus: SLOW paused by retry_after');
cmp_ok($sample{'ldseg_destination_oldest_event_age_seconds|SLOW-ID'} // 0,
       '>', 0, 'prometheus: SLOW oldest event age');
is(scalar(grep { /^ldseg_destination_/ && !/^\w+\{kind="launchdarkly",/ }
            split /\n/, $prom), 0,
   'prometheus: every destination sample labelled kind="launchdarkly"');

sub which {
    my ($name) = @_;
    for my $dir (File::Spec->path) {
        return "$dir/$name" if -f "$dir/$name" && -x _;
    }
    return undef;
}

SKIP: {
    my $promtool = which('promtool');

    if (!$promtool && !$ENV{CI}) {
        skip 'promtool is not installed (.ci/deps.sh installs Debian\'s '
             . 'prometheus package)', 1;
    }

    my $file = $t->testdir . '/metrics.txt';
    $t->write_file('metrics.txt', $prom);
    my $out = $promtool ? `"$promtool" check metrics < "$file" 2>&1` : '';
    my $rc = $promtool ? $? : -1;
    ok($promtool && $rc == 0, 'promtool check metrics accepts the output')
        or diag($promtool ? $out : 'promtool is required in CI');
}

# a reload keeps the destinations' counters

ok($t->reload, 'reload');
my $d2 = dests($t->status);
is(join(',', map { ($d2->{$_}{delivered} // 'undef') . '/'
                   . ($d2->{$_}{received} // 'undef') }
         sort keys %$d), join(',', map { "$d->{$_}{delivered}/"
                                         . "$d->{$_}{received}" }
                                    sort keys %$d),
   'reload: delivered and received per destination kept');

# an empty destination stays, with its counters, and goes on counting

track('good', 'G-6');
ok(Test::Ldseg::wait_for(sub {
       (dests($t->status)->{'GOOD-ID'}{delivered} // 0) == 6 }, 10),
   'GOOD: sixth event delivered, counted on');
$s = $t->status;
is($s->{queue}{destinations}, 2,
   'queue.destinations: SLOW and BAD, which hold events');
is(scalar @{ $s->{destinations} }, 4, 'the empty one still listed');

# LaunchDarkly takes SLOW-ID again: it is delivered once the pause ends,
# which the test does not wait for; its error stays visible

is($t->status->{retired_destinations}{count}, 0, 'nothing retired');

###############################################################################
