#!/usr/bin/perl

# Failed reload after a zone resize, 2 workers, no spool.  LaunchDarkly is
# down and 50 events wait in a 1m zone; the new configuration resizes the
# zone to 2m AND listens on a port that is already in use, so the master
# copies the queue into a new zone and then rejects the configuration
# ("bind() failed").  The running workers must go on exactly as before:
# same pids, their queue intact, new POSTs accepted with 200 (not 503
# queue_full) and counted in queue.events, and once LaunchDarkly is back
# every acknowledged event delivered, exactly once per payload ID.  A later
# reload that does resize the zone still carries everything over.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Delivery qw(post_events ld_tally wait_ld_delivered
                             delivered_ok same_id_same_body_ok ld_figures);
use Test::Ldseg::Reload qw(reload_refused);

use IO::Socket::INET;

###############################################################################

my $t = Test::Ldseg->new()->plan(20);
my $mock = $t->mock(default => { status => 503 });

# a port taken by someone else: the test holds it for the whole file

my $busy = IO::Socket::INET->new(Proto => 'tcp', LocalAddr => '127.0.0.1',
                                 LocalPort => 0, Listen => 1)
    or die "cannot listen: $!\n";
my $bport = $busy->sockport;

# the master's refusal, and nothing else, may be [emerg] in error.log

$t->allow_log(qr/\[emerg\].*bind\(\) to 127\.0\.0\.1:$bport failed/,
              qr/\[emerg\].*still could not bind\(\)/);

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
    ldseg_shutdown_timeout 2s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        %%EXTRA%%

        location /v1/ {
            ldseg on;
            ldseg_client_side_id RELOADFAIL;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

sub conf {
    my ($zone, $extra) = @_;
    (my $c = $conf) =~ s/%%ZONE%%/$zone/;
    $c =~ s/%%EXTRA%%/$extra \/\/ ''/e;
    $t->write_file_expand('nginx.conf', $c);
}

conf('1m');
$t->run;

###############################################################################

sub queue {
    my $s = $t->status or return 'no status';
    return "events=$s->{queue}{events} size=$s->{queue}{size}";
}

# 1. LaunchDarkly down: 50 events wait in the 1m zone, some of them already
# tried (so they carry a payload ID), the rest not yet

my $first = post_events($t, 'rf', 50);
is(scalar @{ $first->{acked} }, 50, '50 events accepted with 200');

Test::Ldseg::wait_for(sub { grep { $_->{status} eq '503' } $mock->posts }, 10);
is(queue(), 'events=50 size=1048576', 'queued in the 1m zone');

# 2. reload: zone 1m -> 2m plus a listen on the busy port

conf('2m', "listen 127.0.0.1:$bport;");

my $rl = reload_refused($t, qr/still could not bind\(\)/, 15);
ok($rl->{refused}
   && $rl->{log} =~ /\[emerg\].*bind\(\) to 127\.0\.0\.1:$bport failed/,
   'reload fails: bind() failed')
    or diag("error.log since the HUP:\n"
            . join("\n", grep { !/\[debug\]/ } split /\n/, $rl->{log}));
is("@{ $rl->{after} }", "@{ $rl->{before} }", 'the old workers stay');

is(queue(), 'events=50 size=1048576',
   'after the failed reload: queue and zone unchanged');

# 3. the running workers go on as before: accept, count, queue

my $more = post_events($t, 'ra', 20);
is(join(' ', map { "$_:$more->{codes}{$_}" } sort keys %{ $more->{codes} }),
   '200:20', 'new POSTs answered 200, not 503');
is(queue(), 'events=70 size=1048576', 'queue.events counts all 70');

# 4. LaunchDarkly back: the old workers deliver everything

$mock->script(default => { status => 202 });

my @acked = (@{ $first->{acked} }, @{ $more->{acked} });
my $r = wait_ld_delivered(mock => $mock, acked => \@acked,
                          match => qr/^r[fa]-/, timeout => 15);
diag(ld_figures('failed resize reload', $r));
delivered_ok($r, 'after the failed reload');
same_id_same_body_ok($r, 'after the failed reload');

my $s;
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 10);
is(($s && $s->{queue}{events}) . ' ' . ($s && $s->{dropped}), '0 0',
   'queue drained, nothing dropped');

# 5. a resize that goes through after the failed one carries the queue

$mock->script(default => { status => 503 });

my $third = post_events($t, 'rg', 20);
is(scalar @{ $third->{acked} }, 20, '20 more events accepted, LD down');
Test::Ldseg::wait_for(sub { grep { $_->{status} eq '503'
                                   && $_->{body} =~ /"rg-/ } $mock->posts },
                      10);

conf('2m');
ok($t->reload, 'reload: zone 1m -> 2m, port free this time');
is(queue(), 'events=20 size=2097152', 'the queue moved to the 2m zone');

$mock->script(default => { status => 202 });

$r = wait_ld_delivered(mock => $mock, acked => $third->{acked},
                       match => qr/^rg-/, timeout => 15);
diag(ld_figures('resize reload after the failed one', $r));
delivered_ok($r, 'after the resize');

$r = ld_tally(mock => $mock, acked => [ @acked, @{ $third->{acked} } ],
              match => qr/^r[fag]-/);
same_id_same_body_ok($r, 'whole run');

Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 10);
is(($s && $s->{queue}{events}) . ' ' . ($s && $s->{dropped}), '0 0',
   'queue drained, nothing dropped');

###############################################################################
