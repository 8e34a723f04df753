#!/usr/bin/perl

# A 413 split cut short by a crash, then the payload split again: an event
# is never delivered under two payload IDs (crash-point module of "make
# crashpoints").
#
# When LaunchDarkly answers 413, the worker makes the two halves (held)
# and then forgets the original, in one lock round.  Killed in between (the
# point "queue_split"), it leaves the original, no longer leased, and its
# held halves.  The next worker to lease the original sends it whole: the
# held halves must go then.  Were they kept, that worker's own split would
# remove the original, and the housekeeping would take the first split's
# halves for a finished split and send them too: every event twice, under
# the IDs of two splits (t/490 saw it under load).
#
# One worker, a long flush interval (so the housekeeping runs seconds
# after the respawned worker's first lease, which the next full payload
# starts), LaunchDarkly taking at most 4 events a POST; the queue must
# drain with every event delivered under one payload ID.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Delivery qw(post_events wait_ld_delivered delivered_ok
                             same_id_same_body_ok ld_figures
                             DELIVERED_OK_TESTS);

use Cwd qw(abs_path);

###############################################################################

my $MODULE = abs_path("$FindBin::Bin/..")
             . '/build/crashpoints/ngx_http_ldseg_module.so';

plan(skip_all => "$MODULE not built (run make crashpoints)")
    unless -f $MODULE;

my $t = Test::Ldseg->new(module => $MODULE)->plan(6 + DELIVERED_OK_TESTS);
my $mock = $t->mock;
my $dir = $t->testdir;

$t->allow_log(qr/worker process \d+ exited on signal 9/,
              qr/shared memory zone "ldseg" was locked by \d+/);

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 1;
worker_rlimit_core 0;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 256k;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 3s;
    ldseg_batch_size 8;
    ldseg_retry_max_delay 1s;
    ldseg_timeout 5s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id SPLITCRASH;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

###############################################################################

$mock->script(default => { status => 202 }, max_events => 4);

$t->run;

my ($victim) = $t->workers;

my $token = "$dir/crash-queue_split";
open my $fh, '>', $token or die "$token: $!\n";
close $fh;

my $first = post_events($t, 'sp', 8, per_request => 8);

ok(Test::Ldseg::wait_for(sub {
       !-e $token && !Test::Ldseg::_alive($victim)
           && grep { $_ != $victim } $t->workers
   }, 10),
   'the worker splitting the first payload killed at queue_split');

my $second = post_events($t, 'sq', 8, per_request => 8);
my @acked = (@{ $first->{acked} }, @{ $second->{acked} });
is(scalar @acked, 16, '16 events accepted, two payloads');

# the queue empties once everything is delivered: on the way, the
# housekeeping of the flush timer (seconds later) would release halves
# left behind and send them

my $s;
Test::Ldseg::wait_for(sub {
    $s = $t->status;
    return $s && $s->{queue}{events} == 0 && $s->{posts}{in_flight} == 0;
}, 15);
is($s && "$s->{queue}{events} $s->{posts}{in_flight}", '0 0',
   'the queue drains');

my $r = wait_ld_delivered(mock => $mock, acked => \@acked,
                          match => qr/^s[pq]-/, timeout => 5);
diag(ld_figures('413 split cut short, then split again', $r));

delivered_ok($r, 'split cut short')
    or diag(join("\n", map {
        sprintf '%s %s by pid %s: %d events %s .. %s', $_->{status},
            $_->{headers}{'x-launchdarkly-payload-id'} // '-',
            $_->{pid} // '?', scalar @{ $_->{events} || [] },
            map { $_->{key} // '?' } @{ $_->{events} || [] }[0, -1] }
        $mock->posts));
same_id_same_body_ok($r, 'split cut short');

# a flush timer later, still nothing more

sleep 3.5;
$s = $t->status;
is($s && "$s->{queue}{events} $s->{posts}{in_flight} " . scalar($mock->posts),
   "0 0 $r->{posts}", 'no halves left behind, nothing sent since');

is($s && $s->{dropped}, 0, 'nothing dropped');

###############################################################################
