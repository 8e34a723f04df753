#!/usr/bin/perl

# Several nodes: three independent nginx instances with the module (each its
# own zone and spool, nothing shared), one load generator spreading its
# requests over them as a load balancer would, one LaunchDarkly (the mock)
# for all three, one client-side ID.
#
#   0 s   load starts, LaunchDarkly answers 202
#   2 s   LaunchDarkly answers 503 (an outage): every node queues, spools
#   4.5 s node B is killed with kill -9 (master and workers) and started
#         again at once on the same configuration and spool
#   6.5 s LaunchDarkly answers 202 again
#   8 s   load stops
#
# Then, across the three nodes, the delivery contract (README, "Delivery
# and what survives what"): every event acknowledged 2xx is delivered,
# except those node B acknowledged within its spool's delay +
# ldseg_flush_interval (+ a margin) before the kill, the documented window;
# nothing is delivered that no client had a 2xx for (the requests without an
# answer may or may not be); no event is delivered under two payload IDs; a
# payload ID always carries the same events and is never used by two nodes;
# every queue and spool drains.
#
# The figures (events, per-event bytes in the zone and the spool at the
# outage's peak) are printed for the README's sizing section.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Delivery qw(ld_tally wait_ld_delivered delivered_ok
                             same_id_same_body_ok ld_figures
                             DELIVERED_OK_TESTS);
use Test::Ldseg::Spool qw(live_keys);

use Time::HiRes qw(time sleep);

###############################################################################

my @names = qw(A B C);
my @t = map { Test::Ldseg->new } @names;

# the teardown checks (error.log, quit in time, counters) for every node

$t[0]->plan(7 + DELIVERED_OK_TESTS + 2 * @names
            + (@names - 1) * Test::Ldseg::TEARDOWN_TESTS);
$_->{_planned} = 1 for @t[1 .. $#t];

my $mock = $t[0]->mock(default => { status => 202 });
my $url = $mock->url;

my $DELAY = 0.5;
my $FLUSH = 0.1;

my %spool;

for my $i (0 .. $#t) {
    my $t = $t[$i];
    my $spool = $spool{ $names[$i] } = $t->testdir . '/spool';
    mkdir $spool or die "mkdir $spool: $!\n";

    $t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_events_url $url;
    ldseg_flush_interval ${\ int($FLUSH * 1000)}ms;
    ldseg_batch_size 50;
    ldseg_retry_max_delay 1s;
    ldseg_spool $spool delay=${\ int($DELAY * 1000)}ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id NODES;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF
    $t->run;
}

my %node_of_port = map { $t[$_]->port(8080) => $names[$_] } 0 .. $#t;
my ($A, $B, $C) = @t;

###############################################################################

# one load generator, three clients, each request to the next node

my $load = $A->load(name => 'n', clients => 3, duration => 30,
                    interval => 0.01,
                    ports => [ map { $_->port(8080) } @t ]);
my $start = time;

sleep 2;
$mock->script(default => { status => 503 });

# the outage's peak, per node: what the zone and the spool hold

my %peak;
while (time < $start + 4.5) {
    for my $i (0 .. $#t) {
        my $s = $t[$i]->status('/status', -timeout => 2) or next;
        my $p = $peak{ $names[$i] } ||= {};
        for my $k (qw(queue spool)) {
            next unless $s->{$k}{events}
                        && $s->{$k}{events} > ($p->{$k}{events} // 0);
            $p->{$k} = { events => $s->{$k}{events},
                         bytes => $s->{$k}{bytes} };
        }
    }
    sleep 0.25;
}

# B's processes answer until the signal lands, somewhere between $kill_at
# and $killed (kill_all looks for the workers first)

my @procs = ($B->master_pid, $B->workers);
my $kill_at = time;
$B->kill_all('KILL');
my $killed = time;
is(scalar(grep { Test::Ldseg::_alive($_) } @procs), 0,
   'node B: master and workers gone after kill -9');

eval { $B->run };
is($@, '', 'node B starts again on the same spool');
my $replayed = Test::Ldseg::wait_for(sub {
    my $s = $B->status('/status', -timeout => 2);
    $s && $s->{replayed} ? $s->{replayed} : 0;
}, 10);
ok($replayed, "node B replays its spool ($replayed events)");

sleep(($start + 6.5) - time) if time < $start + 6.5;
$mock->script(default => { status => 202 });

sleep(($start + 8) - time) if time < $start + 8;
my $res = $load->stop(15);

###############################################################################

# which node answered each event; B's acks within the window before the
# kill (or while the signal was on its way) may be lost

my $window = $DELAY + $FLUSH + 0.5;
my (%acked_by, @young);
for my $id (@{ $res->{acked} }) {
    my $i = $res->{info}{$id};
    my $node = $node_of_port{ $i->{port} } // '?';
    $acked_by{$node}++;
    my $at = $i->{time} + $i->{latency};
    push @young, $id if $node eq 'B' && $at <= $killed
        && $at >= $kill_at - $window;
}
my %young = map { $_ => 1 } @young;
my @old = grep { !$young{$_} } @{ $res->{acked} };

ok((grep { ($acked_by{$_} // 0) > 50 } @names) == 3,
   'every node acked events: '
   . join(' ', map { "$_=" . ($acked_by{$_} // 0) } @names));

my $r = wait_ld_delivered(mock => $mock, acked => \@old,
    maybe => [ @young, @{ $res->{noanswer} } ], match => qr/^n-/,
    timeout => 25);
diag(ld_figures('three nodes, kill -9 of one', $r)
     . sprintf(' | sent=%d acked=%d noanswer=%d, B acked in the last %.1f s '
               . 'before the kill: %d, of which delivered %d',
               scalar @{ $res->{sent} }, scalar @{ $res->{acked} },
               scalar @{ $res->{noanswer} }, $window, scalar @young,
               scalar(grep { my $k = $_; !grep { $_ eq $k } @{ $r->{missing} } }
                      @young)));

delivered_ok($r, 'across the three nodes')
    or diag(join "\n", map {
        my $i = $res->{info}{$_};
        sprintf '  %s: acked by node %s %+.3f s from the kill (latency '
            . '%.3f)', $_, $node_of_port{ $i->{port} } // '?',
            $i->{time} + $i->{latency} - $kill_at, $i->{latency};
    } @{ $r->{missing} }[0 .. ($#{ $r->{missing} } < 19
                               ? $#{ $r->{missing} } : 19)]);
same_id_same_body_ok($r, 'across the three nodes');
is(join(' ', @{ $r->{bad_ids} }), '', 'every payload ID a version 4 UUID');

# a payload ID is one node's: every event of every POST under it was
# acknowledged by the same node

my %nodes_of_id;
for my $p ($mock->posts) {
    my $id = $p->{headers}{'x-launchdarkly-payload-id'} // '';
    for my $e (@{ $p->{events} || [] }) {
        my $k = ref $e eq 'HASH' ? $e->{key} // next : next;
        my $i = $res->{info}{$k} or next;
        $nodes_of_id{$id}{ $node_of_port{ $i->{port} } // '?' } = 1;
    }
}
my @shared = grep { keys %{ $nodes_of_id{$_} } > 1 } keys %nodes_of_id;
is(scalar @shared, 0, 'no payload ID used by two nodes ('
   . scalar(keys %nodes_of_id) . ' payload IDs)')
    or diag("e.g. $shared[0]: " . join(' ', keys %{ $nodes_of_id{$shared[0]} }));

# each node drains: queue empty, every spool record done

for my $i (0 .. $#t) {
    my ($t, $n) = ($t[$i], $names[$i]);
    my $s;
    Test::Ldseg::wait_for(sub {
        $s = $t->status('/status', -timeout => 2);
        $s && $s->{queue}{events} == 0 && $s->{spool}{events} == 0;
    }, 15);
    is($s && "$s->{queue}{events}/$s->{spool}{events}", '0/0',
       "node $n: queue and spool drained");
    my $live = live_keys($spool{$n});
    is(scalar keys %$live, 0, "node $n: no live record left in its spool");
}

# the per-event sizes, for sizing zone and spool

for my $n (@names) {
    my $p = $peak{$n} or next;
    diag(sprintf 'node %s at the outage peak: zone %s, spool %s', $n,
         map { my $x = $p->{$_};
               $x ? sprintf('%d events %d bytes (%.0f bytes/event)',
                            $x->{events}, $x->{bytes},
                            $x->{bytes} / $x->{events})
                  : '-' } qw(queue spool));
}

###############################################################################
