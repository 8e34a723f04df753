#!/usr/bin/perl

# ldseg_dedupe and a worker that dies while its request holds messageIds
# reserved (the crash point "dedupe_reserved" of "make crashpoints": after
# the reservation, before anything is queued): the client gets no answer
# and sends the batch again; the reservations of the dead worker are taken
# over, the batch is accepted and LaunchDarkly receives each event once.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use Cwd qw(abs_path);
use JSON::PP;

###############################################################################

my $MODULE = abs_path("$FindBin::Bin/..")
             . '/build/crashpoints/ngx_http_ldseg_module.so';

plan(skip_all => "$MODULE not built (run make crashpoints)")
    unless -f $MODULE;

my $t = Test::Ldseg->new(module => $MODULE)->plan(7);
my $mock = $t->mock;

$t->allow_log(qr/worker process \d+ exited on signal 9/,
              qr/shared memory zone "\w+" was locked by \d+/);

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
    ldseg_dedupe zone=dd:1m;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id CRASH-ID;
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
my $body = $J->encode({ batch => [
    map { { type => 'track', userId => 'u', event => "K-$_",
            messageId => "k-$_", timestamp => '2022-05-04T03:02:03Z' } }
        1 .. 3 ] });
my $auth = Test::Ldseg::basic_auth('wk-crash');

my @workers = $t->workers;
$t->write_file('crash-dedupe_reserved', '');

my ($code) = $t->http_post('/v1/batch', $body, Authorization => $auth,
                           -quiet => 1);
isnt($code, 200, 'the worker died before answering');
ok(!-e $t->testdir . '/crash-dedupe_reserved', 'at the crash point');

ok(Test::Ldseg::wait_for(sub {
       my @now = $t->workers;
       my %old = map { $_ => 1 } @workers;
       @now == 2 && grep { !$old{$_} } @now;
   }, 10), 'the master started another worker');

my $s = $t->status;
is($s && $s->{dedupe}{entries}, 3, 'its reservations are in the zone');

# the client sends the batch again: taken over at once, accepted

($code, undef, my $raw) = $t->http_post('/v1/batch', $body,
                                        Authorization => $auth);
is($code, 200, 'the batch again: 200') or diag($raw);

($code) = $t->http_post('/v1/batch', $body, Authorization => $auth);
is($code, 200, 'and once more: 200');

$mock->wait_events(3, 10);
select undef, undef, undef, 0.5;
my %got;
$got{ $_->{key} }++ for $mock->events;
is(join(' ', map { "K-$_=" . ($got{"K-$_"} // 0) } 1 .. 3),
   'K-1=1 K-2=1 K-3=1', 'LaunchDarkly receives each event once');

###############################################################################
