#!/usr/bin/perl

# 413 for a payload held on disk only: it is split like one in memory.
# The mock answers 413 to every POST with more than 10 events; payloads of
# 50 events that are on disk only
#
# 1. because the zone is too small for the queue (ldseg_spool delay=0: a
#    spooled payload gives its memory back when the zone is full), or
# 2. because they were replayed from the spool at start,
#
# are halved until they pass: every event arrives, none twice, no accepted
# POST holds more than 10 events, nothing is dropped.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Spool qw(spool_files send_keys wait_spooled);

use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(16);
my $mock = $t->mock(default => { status => 503 });

my $conf = <<'EOF2';
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg %%ZONE%%;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 50;
    ldseg_retry_max_delay 1s;
    ldseg_shutdown_timeout 2s;
    ldseg_spool %%SPOOL%% delay=0;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id SPOOLSPLIT;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF2

sub conf {
    my ($zone, $spool) = @_;
    (my $c = $conf) =~ s/%%ZONE%%/$zone/;
    $c =~ s/%%SPOOL%%/$spool/;
    $t->write_file_expand('nginx.conf', $c);
}

sub spool_dir {
    my $d = $t->testdir . '/' . $_[0];
    mkdir $d or die "mkdir $d: $!\n";
    return $d;
}

sub figures {
    my ($s) = @_;
    return 'no status' unless $s;
    return sprintf 'queue %d events %d bytes, spool %d events %d bytes',
        $s->{queue}{events}, $s->{queue}{bytes}, $s->{spool}{events},
        $s->{spool}{bytes};
}

# 10 requests of 50 events (~250 bytes each), one payload each

sub fill {
    my ($name, $pause) = @_;
    my @acked;
    for my $i (1 .. 10) {
        my @k = map { "$name-$i-$_" } 1 .. 50;
        push @acked, @k if send_keys($t, \@k, pad => 150) == 200;
        sleep $pause;
    }
    return @acked;
}

sub check_split {
    my ($name, $acked) = @_;

    my $before = $t->status;
    $mock->script(default => { status => 202 }, max_events => 10);

    my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => $acked,
        match => qr/^$name-/, timeout => 15);
    diag(Test::Ldseg::figures($name, $r));

    my @p = grep { grep { $_->{key} =~ /^$name-/ } @{ $_->{events} || [] } }
            $mock->posts;
    my @refused = grep { $_->{status} eq '413' } @p;
    my @ok = grep { $_->{status} =~ /^2/ } @p;
    note("$name: POSTs " . join(' ', map { "$_->{status}:"
                                           . @{ $_->{events} || [] } }
                                     @p[0 .. ($#p < 30 ? $#p : 30)]));

    cmp_ok(scalar @refused, '>', 0,
           "$name: " . scalar(@refused) . ' POSTs answered 413');
    is(scalar @{ $r->{missing} }, 0, "$name: every acked event delivered")
        or diag(scalar(@{ $r->{missing} }) . ' missing');
    is($r->{duplicated}, 0, "$name: no event delivered twice");
    is(scalar(grep { @{ $_->{events} || [] } > 10 } @ok), 0,
       "$name: no accepted POST holds more than 10 events");

    my $s;
    Test::Ldseg::wait_for(sub { $s = $t->status;
                                $s && $s->{queue}{events} == 0 }, 5);
    is(($s && $s->{queue}{events}) . ' '
       . (($s && $s->{dropped} // 0) - ($before->{dropped} // 0)),
       '0 0', "$name: queue drained, nothing dropped");

    $mock->script(default => { status => 503 });
}

###############################################################################

# 1. on disk only because the zone is full

conf('64k', spool_dir('spool1'));
$t->run;

my @acked = fill('ev', 0.3);
is(scalar @acked, 500, 'evicted: 500 events acked');

my $s = wait_spooled($t, 10);
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{spool}{events} == 500
                            && $s->{queue}{bytes} * 2 < $s->{spool}{bytes} },
                      10);
ok($s && $s->{queue}{bytes} * 2 < $s->{spool}{bytes},
   'evicted: payloads on disk only (' . figures($s) . ')');

check_split('ev', \@acked);

# 2. on disk only because they were replayed at start

$t->stop;

my $spool = spool_dir('spool2');
conf('1m', $spool);
$t->run;

@acked = fill('rp', 0);
is(scalar @acked, 500, 'replayed: 500 events acked');
$s = wait_spooled($t, 10);
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{spool}{events} == 500 }, 10);
is($s && $s->{spool}{events}, 500, 'replayed: all spooled');

$t->stop;
ok(scalar spool_files($spool), 'replayed: spool holds files: '
   . join(' ', spool_files($spool)));

$t->run;
$s = $t->status;
is($s && $s->{replayed}, 500, 'replayed: 500 events loaded from the spool');

check_split('rp', \@acked);

###############################################################################
