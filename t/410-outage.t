#!/usr/bin/perl

# An outage of LaunchDarkly under continuous load: for 30 s the mock answers
# 503 (15 s) and then resets every connection (15 s) while two clients keep
# sending; then it recovers.  Every message a client got a 2xx for reaches
# LaunchDarkly; a duplicate only ever carries the payload ID of its first
# copy; the status counts the failures, drops nothing and drains to 0.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(13);
my $mock = $t->mock(default => { status => 503 });

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 8m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 50;
    ldseg_retry_max_delay 2s;
    ldseg_timeout 5s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id OUTAGE;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

$t->run;

###############################################################################

my $OUTAGE = $ENV{TEST_LDSEG_OUTAGE} || 30;

my $t0 = time;
my $load = $t->load(name => 'o', clients => 2, duration => $OUTAGE + 6,
                    interval => 0.03);

# 503 for the first half, resets for the second

sleep $OUTAGE / 2;
my $mid = $t->status;
$mock->script(default => { reset => 1 });
sleep $OUTAGE / 2 - (time - $t0 - $OUTAGE / 2) if time - $t0 < $OUTAGE;
my $during = $t->status;

# recovery, with the load still running a few seconds

$mock->script(default => { status => 202 });
my $res = $load->wait(30);

my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^o-/, timeout => 40);

diag(Test::Ldseg::figures('outage', $r, $res));

###############################################################################

my %st;
$st{ $_->{status} }++ for $mock->posts;

cmp_ok(scalar @{ $res->{acked} }, '>', 500, 'load: many messages acked')
    or diag(explain $res->{codes});
is(scalar @{ $res->{acked} }, scalar @{ $res->{sent} },
   'every message accepted during the outage (zone large enough)')
    or diag(explain $res->{codes});
ok($st{503} && $st{reset}, "POSTs failed with 503 and resets"
   . " (503=" . ($st{503} // 0) . " reset=" . ($st{reset} // 0) . ")");

is(join(',', @{ $r->{missing} }[0 .. ($#{ $r->{missing} } > 9 ? 9
                                      : $#{ $r->{missing} })]), '',
   'every acked message delivered')
    or diag(scalar(@{ $r->{missing} }) . ' missing');
is($r->{delivered}, $r->{acked}, 'delivered == acked');
is(join(',', @{ $r->{unacked} }), '', 'nothing delivered that was not acked');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');
is(join(',', @{ $r->{dup_same_post} }), '', 'no event twice in one POST');

cmp_ok($mid && $mid->{queue}{events} // 0, '>', 0,
       'events queued during the outage');

my $s;
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 20);
cmp_ok($s && $s->{failed} // 0, '>', 0, "status: failed > 0 ($s->{failed})");
is($s && $s->{dropped}, 0, 'status: dropped == 0');
is($s && $s->{queue}{events}, 0, 'status: queue drained');
cmp_ok($s && $s->{delivered} // 0, '>=', $r->{delivered},
       'status: delivered counts at least the acked events');

note(sprintf 'outage: %.1f s, POST answers %s', time - $t0,
     join(' ', map { "$_=$st{$_}" } sort keys %st));

###############################################################################
