#!/usr/bin/perl

# A longer soak with mixed faults, not run by "prove -r t/" (it is not a .t
# file).  Two clients send continuously for the whole run while phases of
# faults follow each other: LaunchDarkly answering 503, resetting
# connections, hanging, refusing big payloads with 413, 429 with
# Retry-After; reloads, reloads that resize the zone, worker crashes
# (SIGSEGV, also with a POST in flight), kill -9 of every nginx process,
# quit and restart.  ldseg_spool is configured, so the only events allowed
# to be lost are those acked within the documented window (spool delay +
# flush interval, plus a margin) before a kill -9.  At the end LaunchDarkly
# is healthy and every other acked event must have arrived; duplicates must
# carry the payload ID of their first copy.
#
#     perl t/soak/soak.pl [seconds] [phase seconds]
#     SOAK_SECONDS=180 perl t/soak/soak.pl
#
# Default: 600 s, phases of 10 s.  Prints one line of figures:
#     soak: sent=... acked=... delivered=... duplicated=... (same payload id)

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;
use Time::HiRes qw(time sleep);

my $SECONDS = $ARGV[0] || $ENV{SOAK_SECONDS} || 600;
my $PHASE = $ARGV[1] || $ENV{SOAK_PHASE} || 10;

BEGIN { $ENV{TEST_LDSEG_TIMEOUT} ||= 100_000 }
use Test::Ldseg;

alarm $SECONDS + 600;

my $t = Test::Ldseg->new()->plan(6);
my $mock = $t->mock;

$t->allow_log(qr/worker process \d+ exited on signal 11/,
              qr/shared memory zone "ldseg" was locked by \d+/);

my $spool = $t->testdir . '/spool';
mkdir $spool or die "mkdir $spool: $!\n";

my $conf = <<"EOF";
%%TEST_GLOBALS%%

worker_processes 2;
worker_rlimit_core 0;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg %%ZONE%%;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 50;
    ldseg_retry_max_delay 2s;
    ldseg_shutdown_timeout 2s;
    ldseg_timeout 3s;
    ldseg_connect_timeout 1s;
    ldseg_spool $spool delay=500ms fsync=off;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id SOAK;
            add_header X-Pid \$pid always;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

my @zones = ('4m', '6m');
my $zone = 0;

sub conf {
    (my $c = $conf) =~ s/%%ZONE%%/$zones[$zone]/;
    $t->write_file_expand('nginx.conf', $c);
}

conf();
$t->run;

###############################################################################

my $t0 = time;
my $load = $t->load(name => 'soak', clients => 2, duration => $SECONDS,
                    interval => 0.02, timeout => 5);

my (%faults, @kills, @problems);

sub healthy { $mock->script(default => { status => 202 }) }

sub until_end_of_phase {
    my ($start) = @_;
    my $left = $start + $PHASE - time;
    sleep $left if $left > 0;
}

sub restart {
    my $ok = eval { $t->run; 1 };
    push @problems, "restart failed: $@" unless $ok;
}

my %phase = (
    healthy => sub { healthy() },
    down503 => sub { $mock->script(default => { status => 503 }) },
    reset   => sub { $mock->script(default => { reset => 1 }) },
    hang    => sub { $mock->script(default => { hang => 1 }) },
    split   => sub { $mock->script(default => { status => 202 },
                                   max_events => 7) },
    r429    => sub { $mock->script(default => { status => 202 },
                                   steps => [ { status => 429,
                                                retry_after => 2,
                                                times => 4 } ]) },
    reload  => sub {
        healthy();
        for (1 .. 3) {
            $t->reload or push @problems, 'reload failed';
            sleep $PHASE / 4;
        }
    },
    down_reload => sub {
        $mock->script(default => { status => 503 });
        sleep $PHASE / 3;
        $t->reload or push @problems, 'reload failed';
    },
    resize  => sub {
        healthy();
        $zone = 1 - $zone;
        conf();
        $t->reload or push @problems, 'resize reload failed';
    },
    segv    => sub {
        healthy();
        for (1 .. 2) {
            my @w = $t->workers;
            $t->kill_worker($w[0], 'SEGV') or push @problems, 'no respawn';
            sleep $PHASE / 3;
        }
    },
    segv_inflight => sub {
        $mock->script(default => { status => 202, delay => 2 });
        my $victim;
        Test::Ldseg::wait_for(sub {
            for my $p (reverse $mock->posts) {
                next unless ($p->{delay} // 0) == 2 && $p->{status} eq '202'
                            && $p->{time} + 1.5 > time;
                $victim = $t->worker_for_port($p->{peer}) and return 1;
            }
            0;
        }, $PHASE / 2);
        $t->kill_worker($victim, 'SEGV') if $victim;
        $faults{segv_inflight_hit}++ if $victim;
    },
    kill9   => sub {
        $mock->script(default => { status => 503 });
        sleep $PHASE / 2;
        push @kills, time;
        $t->kill_all('KILL');
        sleep 0.5;
        restart();
    },
    quit    => sub {
        $mock->script(default => { status => 503 });
        sleep $PHASE / 3;
        $t->stop;
        if (my @e = @{ $t->{_stop_errors} || [] }) {
            push @problems, "quit: @e";
        }
        restart();
    },
);

my @cycle = qw(healthy down503 healthy reset reload hang healthy segv
               split down_reload r429 kill9 healthy resize segv_inflight
               quit healthy);

my $i = 0;
while (time - $t0 < $SECONDS - $PHASE) {
    my $name = $cycle[ $i++ % @cycle ];
    my $start = time;
    $faults{$name}++;
    $phase{$name}->();
    until_end_of_phase($start);
    healthy() if $name eq 'split' || $name eq 'segv_inflight';
}

healthy();
my $res = $load->stop(30);

# events acked shortly before a kill -9 may be lost (documented window)

my $WINDOW = 0.5 + 0.1 + 0.5;
my %window;
for my $id (@{ $res->{acked} }) {
    my $i = $res->{info}{$id};
    my $at = $i->{time} + $i->{latency};
    $window{$id} = 1 if grep { $at <= $_ && $at > $_ - $WINDOW } @kills;
}
my @must = grep { !$window{$_} } @{ $res->{acked} };

Test::Ldseg::wait_delivered(mock => $mock, acked => \@must,
    maybe => [ keys %window ], match => qr/^soak-/, timeout => 120);
sleep 3;
my $r = Test::Ldseg::tally(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^soak-/);
my %missing = map { $_ => 1 } @{ $r->{missing} };
my @lost_must = grep { $missing{$_} } @must;
my $lost_window = grep { $missing{$_} } keys %window;

my $s = $t->status;
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 30);

my %st;
$st{ $_->{status} }++ for $mock->posts;

diag(Test::Ldseg::figures(sprintf('soak %ds', time - $t0), $r, $res)
     . sprintf(' | lost in kill -9 windows: %d of %d; faults: %s;'
               . ' POST answers: %s; status: delivered=%d failed=%d'
               . ' dropped=%d lease_expired=%d spooled=%d replayed=%d',
               $lost_window, scalar keys %window,
               join(' ', map { "$_=$faults{$_}" } sort keys %faults),
               join(' ', map { "$_=$st{$_}" } sort keys %st),
               map { $s->{$_} // -1 }
               qw(delivered failed dropped lease_expired spooled replayed)));

is(scalar @lost_must, 0, 'every acked event outside a kill -9 window arrived')
    or diag(scalar(@lost_must) . ' lost, e.g. ' . join(' ', map {
        sprintf '%s(acked at +%.1fs by %s)', $_,
            $res->{info}{$_}{time} - $t0, $res->{info}{$_}{pid} }
        @lost_must[0 .. ($#lost_must < 9 ? $#lost_must : 9)]));
is(join(',', @{ $r->{unacked} }), '', 'nothing delivered that was not acked');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');
is(join('; ', @problems), '', 'every reload, restart and respawn worked');
is($s && $s->{queue}{events}, 0, 'queue drained');
is($s && $s->{dropped}, 0, 'nothing dropped');

###############################################################################
