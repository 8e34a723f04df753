#!/usr/bin/perl

# LaunchDarkly hangs (accepts, never answers) with ldseg_timeout 3s: the
# workers never block.  A plain location on the same nginx answers every
# request within normal latency (each under 1 s: a liveness bound, not a
# benchmark) while 200 ldseg requests are accepted and POSTs hang; the
# POSTs in flight never exceed workers x ldseg_max_inflight; once
# LaunchDarkly answers again every acked event arrives.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(11);
my $mock = $t->mock(default => { hang => 1 });

my ($WORKERS, $INFLIGHT) = (2, 4);

$t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%

worker_processes $WORKERS;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 5;
    ldseg_timeout 3s;
    ldseg_connect_timeout 1s;
    ldseg_max_inflight $INFLIGHT;
    ldseg_retry_max_delay 2s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id HUNG;
        }

        location /plain {
            return 200 "ok";
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

$t->run;

###############################################################################

sub rss {
    my $kb = 0;
    for my $w ($t->workers) {
        open my $fh, '<', "/proc/$w/status" or next;
        while (<$fh>) { $kb += $1 if /^VmRSS:\s+(\d+)/ }
        close $fh;
    }
    return $kb;
}

my $rss0 = rss();
my $t0 = time;

my $load = $t->load(name => 'h', clients => 2, count => 100,
                    interval => 0.02, timeout => 5);

my ($plain, $slow, $bad, $max_lat, $max_inflight, $polls) =
    (0, 0, 0, 0, 0, 0);

# watch for 12 s: the load, then several rounds of POST timeouts

while (time - $t0 < 12) {
    my $s0 = time;
    my ($code, undef, $body) = $t->http_get('/plain', -timeout => 5);
    my $lat = time - $s0;
    $plain++;
    $bad++ if $code != 200 || $body ne 'ok';
    $slow++ if $lat >= 1;
    $max_lat = $lat if $lat > $max_lat;

    my $s = $t->status('/status', -timeout => 5);
    if ($s) {
        $polls++;
        my $f = $s->{posts}{in_flight} // 0;
        $max_inflight = $f if $f > $max_inflight;
    }
    sleep 0.05;
}

my $res = $load->wait(30);
my $rss1 = rss();

my %st;
$st{ $_->{status} }++ for $mock->posts;

is(scalar @{ $res->{acked} }, 200, '200 ldseg requests accepted');
cmp_ok($res->{max_latency}, '<', 1, sprintf 'ldseg requests answered at once'
       . ' (max %.3f s)', $res->{max_latency});
is($bad, 0, "/plain: $plain requests, all 200 ok");
is($slow, 0, sprintf '/plain: every answer under 1 s (max %.3f s)', $max_lat);
cmp_ok($polls, '>', 10, "status polled $polls times");
cmp_ok($max_inflight, '<=', $WORKERS * $INFLIGHT,
       "posts.in_flight never above workers x ldseg_max_inflight "
       . "(max seen $max_inflight)");
ok(($st{aborted} // 0) >= 1, 'hung POSTs timed out ('
   . ($st{aborted} // 0) . ' aborted by ldseg_timeout)');
cmp_ok(scalar $mock->posts, '<', 200 / 5 * 3,
       'no POST storm against a hung LaunchDarkly: '
       . scalar($mock->posts) . ' POSTs');

note(sprintf 'worker RSS %d kB -> %d kB while hung', $rss0, $rss1);

# LaunchDarkly answers again

$mock->script(default => { status => 202 });
my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^h-/, timeout => 30);
diag(Test::Ldseg::figures('hung LD', $r, $res)
     . sprintf(' | /plain max %.3f s over %d requests, in_flight max %d',
               $max_lat, $plain, $max_inflight));
is(scalar @{ $r->{missing} }, 0, 'every acked event delivered after recovery')
    or diag(scalar(@{ $r->{missing} }) . ' missing');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');

my $s;
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 10);
is(($s && $s->{queue}{events}) . ' ' . ($s && $s->{posts}{in_flight}), '0 0',
   'queue drained, nothing in flight');

###############################################################################
