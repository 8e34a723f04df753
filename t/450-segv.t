#!/usr/bin/perl

# A worker crash (SIGSEGV) under load, 2 workers, no spool.
#
# 1. LaunchDarkly up: one worker is killed five times while two clients
#    send; the master starts a new one each time, the status endpoint still
#    answers (no lock held forever), every acked message arrives.
# 2. LaunchDarkly slow (every answer after 2 s): the worker that has a POST
#    in flight (found through the mock's record of the client port) is
#    killed; the other workers take its lease over and send the same
#    payload again, with the same payload ID and the same events.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(16);
my $mock = $t->mock;

# the deliberate kills; any other alert still fails the test

$t->allow_log(qr/worker process \d+ exited on signal 11/,
              qr/shared memory zone "ldseg" was locked by \d+/);

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;
worker_rlimit_core 0;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 10;
    ldseg_retry_max_delay 2s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id SEGV;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

$t->run;

###############################################################################

sub status_quick {
    my ($code, undef, $body) = $t->http_get('/status', -timeout => 3);
    return $code == 200 ? Test::Ldseg::json($body) : undef;
}

# 1. five crashes under load, LaunchDarkly up

my $load = $t->load(name => 's', clients => 2, duration => 60,
                    interval => 0.01, timeout => 5);
sleep 1;

my ($respawned, $status_ok) = (0, 0);
for my $i (1 .. 5) {
    my @w = $t->workers;
    my $victim = $w[$i % @w];
    my @new = $t->kill_worker($victim, 'SEGV');
    $respawned++ if @new == 2 && !grep { $_ == $victim } @new;
    $status_ok++ if status_quick();
    sleep 1.5;
}
my $res = $load->stop(15);

is($respawned, 5, 'a new worker after each of 5 crashes');
is($status_ok, 5, 'status answers after each crash');

my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^s-/, timeout => 30);
diag(Test::Ldseg::figures('SIGSEGV x5, LD up', $r, $res));
cmp_ok($r->{acked}, '>', 300, 'many messages acked');
is(scalar @{ $r->{missing} }, 0, 'every acked message delivered')
    or diag(scalar(@{ $r->{missing} }) . ' missing');
is(join(',', @{ $r->{unacked} }), '', 'nothing delivered that was not acked');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');

# 2. LaunchDarkly slow: kill the worker whose POST is in flight

$mock->script(default => { status => 202, delay => 2 });
$load = $t->load(name => 'f', clients => 2, duration => 60,
                 interval => 0.02, timeout => 5);
sleep 1;

my (@killed_posts, @misses);

for my $i (1 .. 3) {
    my ($victim, $post);
    Test::Ldseg::wait_for(sub {
        my $now = time;
        for my $p (reverse $mock->posts) {
            next unless ($p->{delay} // 0) == 2 && $p->{status} eq '202'
                        && $p->{time} + 2 > $now + 0.5;
            my $w = $t->worker_for_port($p->{peer}) or next;
            ($victim, $post) = ($w, $p);
            return 1;
        }
        return 0;
    }, 10);

    if (!$victim) {
        push @misses, $i;
        next;
    }

    $t->kill_worker($victim, 'SEGV');
    push @killed_posts, $post;
    sleep 2.5;
}

is(scalar @killed_posts, 3, 'killed 3 workers with a POST in flight')
    or diag("no POST in flight found in rounds @misses");

$mock->script(default => { status => 202 });
$res = $load->stop(15);

$r = Test::Ldseg::wait_delivered(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^f-/, timeout => 40);
sleep 2.5;      # answers still delayed when the load stopped are given
$r = Test::Ldseg::tally(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^f-/);
diag(Test::Ldseg::figures('SIGSEGV x3 with a POST in flight, LD slow', $r,
                          $res));

is(scalar @{ $r->{missing} }, 0, 'every acked message delivered')
    or diag(scalar(@{ $r->{missing} }) . ' missing');
is(join(',', @{ $r->{unacked} }), '', 'nothing delivered that was not acked');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');

# each in-flight POST of a dead worker: aborted, then sent again by another
# worker with the same payload ID and the same events

my %by_seq = map { $_->{seq} => $_ } $mock->posts;
my ($aborted, $resent, $same) = (0, 0, 0);
for my $k (@killed_posts) {
    my $p = $by_seq{ $k->{seq} };
    $aborted++ if $p->{status} eq 'aborted';
    my $id = $p->{headers}{'x-launchdarkly-payload-id'};
    my ($again) = grep { $_->{seq} > $p->{seq}
                         && $_->{status} =~ /^2/
                         && $_->{headers}{'x-launchdarkly-payload-id'} eq $id }
                  values %by_seq;
    next unless $again;
    $resent++;
    $same++ if Test::Ldseg::canon_text(Test::Ldseg::canon_json($again->{body}))
            eq Test::Ldseg::canon_text(Test::Ldseg::canon_json($p->{body}));
}
is($aborted, scalar @killed_posts, 'the in-flight POSTs were cut off');
is($resent, scalar @killed_posts,
   'each was sent again with the same payload ID');
is($same, scalar @killed_posts, 'and the same events');

my $s = status_quick();
ok($s, 'status answers');
Test::Ldseg::wait_for(sub { $s = status_quick();
                            $s && $s->{queue}{events} == 0 }, 20);
is(($s && $s->{queue}{events}) . ' ' . ($s && $s->{dropped}), '0 0',
   'queue drained, nothing dropped');
is($s && $s->{posts}{in_flight}, 0,
   'status: posts.in_flight back to 0 once everything is delivered')
    or diag("posts: " . join(' ', map { "$_=$s->{posts}{$_}" }
                                  sort keys %{ $s->{posts} || {} }));
note('status after the crashes: lease_expired=' . ($s->{lease_expired} // '?')
     . ' posts=' . join(' ', map { "$_=$s->{posts}{$_}" }
                             sort keys %{ $s->{posts} || {} }));

my @locked = $t->read_file('error.log') =~ /(was locked by \d+)/g;
note(scalar(@locked) . ' crash(es) with the zone mutex held (force-unlocked)');

###############################################################################
