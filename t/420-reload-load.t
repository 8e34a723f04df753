#!/usr/bin/perl

# Reloads under load, 2 workers, no spool: ten "nginx -s reload" while two
# clients keep sending lose nothing acked.  Then, with LaunchDarkly down (so
# events wait in the queue) and the load still running, reloads that CHANGE
# the ldseg_zone size (grow, then shrink) move the queue to the new zone:
# after recovery every acked event arrives, and error.log says "resized".

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(19);
my $mock = $t->mock;

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
    ldseg_batch_size 20;
    ldseg_retry_max_delay 2s;
    ldseg_shutdown_timeout 2s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id RELOADS;
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

# 1. ten reloads under load, LaunchDarkly up

my $t0 = time;
my $load = $t->load(name => 'r', clients => 2, duration => 60,
                    interval => 0.02);
sleep 1;

my $reloads = 0;
for (1 .. 10) {
    $reloads++ if $t->reload;
    sleep 0.7;
}
is($reloads, 10, '10 reloads under load');

my $res = $load->stop(15);
my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^r-/, timeout => 30);
diag(Test::Ldseg::figures('reload x10', $r, $res));

cmp_ok($r->{acked}, '>', 300, 'many messages acked');
is(scalar @{ $r->{missing} }, 0, 'every acked message delivered')
    or diag("missing: @{ $r->{missing} }[0 .. 9]");
is(join(',', @{ $r->{unacked} }), '', 'nothing delivered that was not acked');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');
is(scalar(@{ $res->{other} }) + scalar(@{ $res->{refused} }), 0,
   'no message refused')
    or diag(explain $res->{codes});

# 2. LaunchDarkly down, load running: resize the zone 1m -> 2m -> 512k

$mock->script(default => { status => 503 });

my $log0 = length $t->read_file('error.log');

$load = $t->load(name => 'z', clients => 2, duration => 60,
                 interval => 0.02);
sleep 2;

my $s0 = $t->status;
cmp_ok($s0 && $s0->{queue}{events} // 0, '>', 0,
       'events wait while LaunchDarkly is down');

my @marks;
sub resize {
    my ($zone, $name) = @_;
    my @old = $t->workers;
    conf($zone);
    my $h = time;
    my $ok = $t->reload;
    push @marks, { name => $name, hup => $h, done => time, old => \@old,
                   new => [ $t->workers ] };
    return $ok;
}

ok(resize('2m', '1m->2m'), 'reload: zone 1m -> 2m, under load');
my $s1 = $t->status;
is($s1 && $s1->{queue}{size}, 2 * 1024 * 1024, 'new zone size in effect');
sleep 1.5;

ok(resize('512k', '2m->512k'), 'reload: zone 2m -> 512k, under load');
sleep 1.5;

ok(resize('1m', '512k->1m'), 'reload: zone 512k -> 1m, under load');
sleep 1;

$res = $load->stop(15);
my $log = substr $t->read_file('error.log'), $log0;
my @resized = $log =~ /(ldseg_zone "ldseg" resized[^\n]*)/g;
is(scalar @resized, 3, 'error.log: 3 "resized" notices')
    or diag($log =~ /(.*resiz.*)/g);
note($_) for @resized;
is(scalar(grep { /lost/ } @resized), 0, 'nothing lost in a resize');

my $s2 = $t->status;
cmp_ok($s2 && $s2->{queue}{events} // 0, '>=', $r->{acked} ? 1 : 0,
       'events still queued after the resizes');

# recovery

$mock->script(default => { status => 202 });

$r = Test::Ldseg::wait_delivered(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^z-/, timeout => 25);
diag(Test::Ldseg::figures('resize under load, LD down', $r, $res));

cmp_ok($r->{acked}, '>', 100, 'many messages acked while LaunchDarkly down');
is(scalar @{ $r->{missing} }, 0, 'every acked message delivered after resize')
    or diag(scalar(@{ $r->{missing} }) . " missing:\n" . explain_missing());

# when, relative to the resizing reloads, and by which worker the missing
# events were acked

sub explain_missing {
    my $out = '';
    for my $m (@marks) {
        $out .= sprintf "  reload %s: HUP at +0.000, done at +%.3f, "
            . "old workers %s, new workers %s\n", $m->{name},
            $m->{done} - $m->{hup}, "@{ $m->{old} }", "@{ $m->{new} }";
    }
    for my $id (sort { $res->{info}{$a}{time} <=> $res->{info}{$b}{time} }
                @{ $r->{missing} })
    {
        my $i = $res->{info}{$id};
        my ($near) = sort { abs($i->{time} - $a->{hup})
                            <=> abs($i->{time} - $b->{hup}) } @marks;
        my $gen = grep({ $_ == $i->{pid} } @{ $near->{old} }) ? 'an OLD'
                : grep({ $_ == $i->{pid} } @{ $near->{new} }) ? 'a new'
                : 'an other';
        $out .= sprintf "  %s acked at HUP(%s)%+.3f s by %s worker %s\n",
            $id, $near->{name}, $i->{time} - $near->{hup}, $gen, $i->{pid};
    }
    return $out;
}
is(join(',', @{ $r->{unacked} }), '', 'nothing delivered that was not acked');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');

my $s;
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 20);
is(($s && $s->{queue}{events}) . ' ' . ($s && $s->{dropped}), '0 0',
   'queue drained, nothing dropped');

note(sprintf 'reload-load: %.1f s', time - $t0);

###############################################################################
