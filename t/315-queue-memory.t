#!/usr/bin/perl

# The zone memory the queue takes, in the status: "queue.memory" (JSON) and
# ldseg_queue_memory_bytes (Prometheus) next to the events' own bytes.
# With LaunchDarkly refusing, tracks and batches of ~300-byte events fill
# payloads of 100: the memory is at least the bytes and at most 1.3 times
# them; every event is then delivered once and whole (events share chunks),
# and the gauge is back to 0 when the queue is empty.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(10);
my $mock = $t->mock(default => { status => 503 });

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 5s;
    ldseg_batch_size 100;
    ldseg_retry_max_delay 1s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id MEM;
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

sub message {
    my ($key) = @_;
    return { type => 'track', userId => "user-$key", event => $key,
             timestamp => $TS,
             properties => { order_id => "A-$key", revenue => 64.5,
                             currency => 'EUR', note => 'n' x 80 } };
}

my (@keys, $bad);

for my $i (1 .. 300) {
    my $key = "QM-t$i";
    my ($code) = $t->http_post('/v1/track', $J->encode(message($key)));
    $bad //= "track $i: $code" unless $code == 200;
    push @keys, $key;
}

for my $i (1 .. 10) {
    my @batch = map { message("QM-b$i-$_") } 1 .. 20;
    my ($code) = $t->http_post('/v1/batch', $J->encode({ batch => \@batch }));
    $bad //= "batch $i: $code" unless $code == 200;
    push @keys, map { $_->{event} } @batch;
}

is($bad, undef, '300 tracks and 10 batches of 20 accepted');

my $s = $t->status || {};
my $q = $s->{queue} || {};
is($q->{events}, 500, 'status: 500 events queued');

my ($bytes, $mem) = ($q->{bytes} // 0, $q->{memory} // 0);
my $ratio = $bytes ? $mem / $bytes : 0;
diag(sprintf('queue: %d event bytes in %d bytes of zone memory, %.3f times',
             $bytes, $mem, $ratio));
cmp_ok($mem, '>=', $bytes, 'queue.memory is at least the events\' bytes');
cmp_ok($ratio, '<=', 1.3, 'and at most 1.3 times them');

my (undef, undef, $prom) = $t->http_get('/status?format=prometheus');
like($prom // '', qr/^# TYPE ldseg_queue_memory_bytes gauge$/m,
     'Prometheus: ldseg_queue_memory_bytes is a gauge');
my ($pmem) = ($prom // '') =~ /^ldseg_queue_memory_bytes (\d+)$/m;
is($pmem, $mem, 'Prometheus: the same value as the JSON');

# LaunchDarkly back: every event once, whole

$mock->script(default => { status => 202 });
is($mock->wait_events(500, 30), 500, '500 events delivered');
select undef, undef, undef, 0.5;

my %got;
$got{ $_->{key} // '' }++ for $mock->events;
is(join(',', grep { ($got{$_} // 0) != 1 } @keys), '',
   'each event delivered once');

Test::Ldseg::wait_for(sub { my $x = $t->status;
                            $x && $x->{queue}{events} == 0 }, 10);
$q = ($t->status || {})->{queue} || {};
is($q->{bytes}, 0, 'drained: queue.bytes 0');
is($q->{memory}, 0, 'drained: queue.memory 0');

###############################################################################
