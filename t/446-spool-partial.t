#!/usr/bin/perl

# A spool only partly loaded at start: kill -9 leaves 1500 one-event
# payloads in the spool; nginx starts again with a zone too small to load
# them all.  The loaded part is delivered, and a spool file that still
# holds records not loaded is not deleted: every event not delivered yet is
# still in a live record on disk.  The next start, with a zone big enough,
# delivers the rest: nothing is lost over both runs, and an event sent twice
# carries the same payload ID both times.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Spool qw(spool_files live_keys send_keys wait_spooled);

use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(12);
my $mock = $t->mock(default => { status => 503 });

my $spool = $t->testdir . '/spool';
mkdir $spool or die "mkdir $spool: $!\n";

my $conf = <<"EOF2";
%%TEST_GLOBALS%%

worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg %%ZONE%%;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 1;
    ldseg_retry_max_delay 1s;
    ldseg_spool $spool delay=0;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id PARTIAL;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF2

sub conf {
    my ($zone) = @_;
    (my $c = $conf) =~ s/%%ZONE%%/$zone/;
    $t->write_file_expand('nginx.conf', $c);
}

sub delivered_keys {
    my %d;
    for my $p (grep { $_->{status} =~ /^2/ } $mock->posts) {
        $d{ $_->{key} } = 1 for @{ $p->{events} || [] };
    }
    return \%d;
}

###############################################################################

# 1500 payloads of one event each, all on disk, then kill -9

conf('4m');
$t->run;

my @acked;
for my $i (1 .. 30) {
    my @k = map { "p-$i-$_" } 1 .. 50;
    push @acked, @k if send_keys($t, \@k) == 200;
}
is(scalar @acked, 1500, '1500 events acked');

my $s = wait_spooled($t, 15);
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{spool}{events} == 1500 }, 15);
is($s && $s->{spool}{events}, 1500, 'all 1500 events spooled');

$t->kill_all('KILL');

my $live = live_keys($spool, qr/^p-/);
is(scalar(grep { $live->{$_} } @acked), 1500,
   'all 1500 events on disk: ' . join(' ', spool_files($spool)));

# a start with a zone too small to load them all

$mock->script(default => { status => 202 });
conf('32k');
$t->run;

my $n = 0;
Test::Ldseg::wait_for(sub {
    $s = $t->status;
    return 0 unless $s && $s->{queue}{events} == 0;
    my $now = keys %{ delivered_keys() };
    return 1 if $now == $n && $now > 0;
    $n = $now;
    sleep 0.5;
    return 0;
}, 20);

my $d = delivered_keys();
my @first = grep { $d->{$_} } @acked;
my @rest = grep { !$d->{$_} } @acked;
diag(sprintf 'small zone: %d of 1500 events loaded and delivered, %d left',
     scalar @first, scalar @rest);
cmp_ok(scalar @first, '>', 0, 'the loaded part is delivered');
cmp_ok(scalar @rest, '>', 0, 'not everything fitted in the small zone');
is($s && $s->{queue}{events}, 0, 'the loaded part drained');

$live = live_keys($spool, qr/^p-/);
my @gone = grep { !$live->{$_} } @rest;
is(scalar @gone, 0, 'every event not loaded is still in the spool: '
   . join(' ', spool_files($spool)))
    or diag(scalar(@gone) . ' of ' . scalar(@rest)
            . ' undelivered events no longer on disk, e.g. ' . join(' ', grep { defined } @gone[0 .. 2]));

$t->stop;

# the next start with a big zone delivers the rest

conf('4m');
$t->run;

my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@acked,
    match => qr/^p-/, timeout => 20);
diag(Test::Ldseg::figures('partly loaded spool, both runs', $r));
is(scalar @{ $r->{missing} }, 0, 'every acked event delivered over both runs')
    or diag(scalar(@{ $r->{missing} }) . ' missing');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');
is(join(',', @{ $r->{unacked} }), '', 'nothing delivered that was not acked');

Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 10);
is($s && $s->{queue}{events}, 0, 'queue drained');
Test::Ldseg::wait_for(sub { !spool_files($spool) }, 10);
is(join(' ', spool_files($spool)), '', 'spool empty afterwards');

###############################################################################
