#!/usr/bin/perl

# A 413 split across a zone resize: an event is never delivered under two
# payload IDs.
#
# A reload that changes the zone size copies every payload into the new
# zone with its payload ID, also one an old worker is sending: both copies
# may be sent, under that one ID.  When LaunchDarkly answers such a POST
# with 413, the payload is split into two halves with new IDs.  If the old
# worker split its copy and sent the halves while the new zone split and
# sent its own copy, each event would reach LaunchDarkly under two
# different payload IDs, and LaunchDarkly would keep it twice (crash-point
# test t/490 saw this when a resize came while payloads were split).
#
# One worker; LaunchDarkly takes at most 4 events a POST (413 beyond) and
# answers the first POST, of 8 events, only after 2 s.  While that POST is
# in flight the zone grows from 256k to 320k, and the new worker sends the
# copy at once.  Every event must be delivered under exactly one payload ID
# (the new zone's split), the old worker must send nothing of what it split
# once the new zone has the payload, and the queue must drain.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Delivery qw(post_events wait_ld_delivered delivered_ok
                             same_id_same_body_ok ld_figures
                             DELIVERED_OK_TESTS);

use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(7 + DELIVERED_OK_TESTS);
my $mock = $t->mock;

my $conf = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg %%ZONE%%;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 8;
    ldseg_retry_max_delay 1s;
    ldseg_timeout 5s;
    ldseg_shutdown_timeout 10s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id RESIZESPLIT;
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

###############################################################################

$mock->script(default => { status => 202 }, max_events => 4,
              steps => [ { delay => 2, times => 1 } ]);

conf('256k');
$t->run;

my @old = $t->workers;

my $sent = post_events($t, 'rs', 8, per_request => 8);
is(scalar @{ $sent->{acked} }, 8, '8 events accepted, one payload');

ok(Test::Ldseg::wait_for(sub { $mock->posts >= 1 }, 5),
   'the old worker sends the payload (answered 413 in 2 s)');
my ($first) = $mock->posts;

conf('320k');
ok($t->reload, 'reload with a larger zone while the POST is in flight');
like($t->read_file('error.log'), qr/ldseg_zone "ldseg" resized/,
     'the queue was copied into the resized zone');

my $r = wait_ld_delivered(mock => $mock, acked => $sent->{acked},
                          match => qr/^rs-/, timeout => 10);
diag(ld_figures('413 split across a resize', $r));

delivered_ok($r, '413 split across a resize')
    or diag(join("\n", map {
        sprintf '%s %s by pid %s: %d events %s .. %s', $_->{status},
            $_->{headers}{'x-launchdarkly-payload-id'} // '-',
            $_->{pid} // '?', scalar @{ $_->{events} || [] },
            map { $_->{key} // '?' } @{ $_->{events} || [] }[0, -1] }
        $mock->posts));
same_id_same_body_ok($r, '413 split across a resize');

my %old = map { $_ => 1 } @old;
is(join(' ', map { $_->{headers}{'x-launchdarkly-payload-id'} }
             grep { $_->{seq} != $first->{seq} && $old{ $_->{pid} // 0 } }
             $mock->posts),
   '', 'the old worker sent nothing after its 413');

my $s;
Test::Ldseg::wait_for(sub {
    $s = $t->status;
    return $s && $s->{queue}{events} == 0 && $s->{posts}{in_flight} == 0;
}, 10);
is($s && "$s->{queue}{events} $s->{posts}{in_flight}", '0 0',
   'the queue drains');

###############################################################################
