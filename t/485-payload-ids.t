#!/usr/bin/perl

# Payload IDs unique across workers, reloads, resizes and respawns.  Two
# workers, small payloads (ldseg_batch_size 5), two clients sending all the
# time; meanwhile a reload that resizes the zone (1m -> 2m) while
# LaunchDarkly is down, two plain reloads, a worker killed with SIGKILL (the
# master starts another), and a second resize (2m -> 3m).  LaunchDarkly
# answers 503 now and then, so payloads are retried.  It is down for a second
# before each resize (the master copies a queue of payloads most of which
# were never sent, so their IDs are fixed in the copy) and back as soon as
# the new workers run, so the old ones can still send what they accepted
# between the copy and their exit (that window is 420-reload-load.t's
# business, not this file's).
#
# Every X-LaunchDarkly-Payload-ID the mock sees must belong to one set of
# events: all POSTs carrying it have the same body, byte for byte (after
# gunzip).  LaunchDarkly drops a payload whose ID it has already accepted,
# so an ID reused for other events loses them: every acknowledged event
# must be in a POST that LaunchDarkly keeps.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Delivery qw(ld_tally wait_ld_delivered delivered_ok
                             same_id_same_body_ok ld_figures explain_missing);
use Test::Ldseg::Reload qw(reload_then);

use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(14);
my $mock = $t->mock;

# the deliberate kill; any other alert still fails the test

$t->allow_log(qr/worker process \d+ exited on signal 9/,
              qr/shared memory zone "ldseg" was locked by \d+/);

my $conf = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg %%ZONE%%;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 5;
    ldseg_retry_max_delay 1s;
    ldseg_timeout 2s;
    ldseg_connect_timeout 1s;
    ldseg_shutdown_timeout 3s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id PAYLOADIDS;
            add_header X-Pid $pid always;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

sub conf {
    my ($zone) = @_;
    (my $c = $conf) =~ s/%%ZONE%%/$zone/;
    $t->write_file_expand('nginx.conf', $c);
}

conf('1m');
$t->run;

###############################################################################

my $t0 = time;

# LaunchDarkly up, but a few 503s: those payloads are sent again

sub ld_flaky {
    $mock->script(default => { status => 202 },
                  steps => [ { status => 503, times => 3 } ]);
}

my @marks;

sub reload_mark {
    my ($name, $cb) = @_;
    my $m = reload_then($t, $cb) or return 0;
    push @marks, { %$m, name => $name };
    return 1;
}

# a resize while LaunchDarkly is down: payloads wait, most never tried yet,
# when the master copies the queue; LaunchDarkly is back once the new
# workers run, so the old ones can send what they accepted meanwhile

sub resize {
    my ($zone) = @_;
    $mock->script(default => { status => 503 });
    sleep 1;
    conf($zone);
    return reload_mark("resize to $zone", \&ld_flaky);
}

ld_flaky();

my $load = $t->load(name => 'p', clients => 2, duration => 40,
                    interval => 0.02, timeout => 5);
sleep 1;

ok(resize('2m'), 'reload: zone 1m -> 2m, under load');
sleep 1;
ok(reload_mark('reload 1'), 'reload');
sleep 1;
ok(reload_mark('reload 2'), 'reload again');
sleep 1;

my @w = $t->workers;
my $k = time;
my @new = $t->kill_worker($w[0], 'KILL');
push @marks, { name => 'kill -9', hup => $k, done => time, old => [ $w[0] ],
               new => \@new };
ok(@new == 2 && !grep({ $_ == $w[0] } @new), 'kill -9 of a worker: respawned');
sleep 1;

ok(resize('3m'), 'reload: zone 2m -> 3m, under load');
sleep 1.5;

my $res = $load->stop(15);

my $s = $t->status;
is($s && $s->{queue}{size}, 3 * 1024 * 1024, 'the 3m zone is in effect');

$mock->script(default => { status => 202 });

my $r = wait_ld_delivered(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^p-/, timeout => 25);
sleep 0.5;      # POSTs still on their way when the last event arrived
$r = ld_tally(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^p-/);

diag(ld_figures('payload IDs', $r) . sprintf(' | sent=%d refused503=%d'
     . ' other=%d noanswer=%d, %.1f s', scalar @{ $res->{sent} },
     scalar @{ $res->{refused} }, scalar @{ $res->{other} },
     scalar @{ $res->{noanswer} }, time - $t0));

cmp_ok($r->{acked}, '>', 200, 'many events acked');
cmp_ok($r->{retries}, '>', 0, 'some payloads were sent more than once');
is(join(' ', @{ $r->{bad_ids} }), '',
   'every POST carries a version 4 UUID payload ID');
same_id_same_body_ok($r, 'workers, reloads, resizes, respawn');
delivered_ok($r, 'workers, reloads, resizes, respawn')
    or diag(explain_missing($r, $res, @marks));

Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 15);
is(($s && $s->{queue}{events}) . ' ' . ($s && $s->{dropped}), '0 0',
   'queue drained, nothing dropped');

###############################################################################
