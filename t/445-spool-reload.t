#!/usr/bin/perl

# Spool and reload: payloads held on disk only (ldseg_spool delay=0 and a
# zone too small for the queue, so spooled payloads give their memory back)
# survive a reload that
#
# 1. removes the "ldseg_spool" line: they are read from the old directory
#    and delivered when LaunchDarkly is back, none dropped as
#    "spool_corrupt";
# 2. points "ldseg_spool" to another (empty) directory: the same, read from
#    the old directory, while new payloads go to the new one.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Spool qw(spool_files send_keys wait_spooled);

use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(18);
my $mock = $t->mock(default => { status => 503 });

my $conf = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 64k;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 10;
    ldseg_retry_max_delay 1s;
    ldseg_shutdown_timeout 2s;
    %%SPOOL%%

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id SPOOLRELOAD;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

sub conf {
    my ($spool_line) = @_;
    (my $c = $conf) =~ s/%%SPOOL%%/$spool_line/;
    $t->write_file_expand('nginx.conf', $c);
}

sub spool_dir {
    my $d = $t->testdir . '/' . $_[0];
    mkdir $d or die "mkdir $d: $!\n";
    return $d;
}

# about 150 KB of events into a 64 KB zone, slowly enough for the flush
# timer to spool them (delay=0): most payloads end up on disk only

sub fill {
    my ($name) = @_;
    my @acked;
    for my $i (1 .. 60) {
        my @k = map { "$name-$i-$_" } 1 .. 5;
        push @acked, @k if send_keys($t, \@k, pad => 300) == 200;
        sleep 0.1;
    }
    return @acked;
}

sub disk_only {
    my ($s) = @_;
    return $s && $s->{queue}{events} > 0
        && $s->{spool}{events} == $s->{queue}{events}
        && $s->{queue}{bytes} * 2 < $s->{spool}{bytes};
}

sub figures {
    my ($s) = @_;
    return 'no status' unless $s;
    return sprintf 'queue %d events %d bytes, spool %d events %d bytes',
        $s->{queue}{events}, $s->{queue}{bytes}, $s->{spool}{events},
        $s->{spool}{bytes};
}

sub check_delivered {
    my ($name, $acked, $before) = @_;

    my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => $acked,
        match => qr/^$name-/, timeout => 20);
    diag(Test::Ldseg::figures($name, $r));
    is(scalar @{ $r->{missing} }, 0, "$name: every acked event delivered")
        or diag(scalar(@{ $r->{missing} }) . ' missing');
    is(join(',', @{ $r->{dup_other_id} }), '',
       "$name: duplicates carry the payload ID of the first copy");
    is(join(',', @{ $r->{unacked} }), '',
       "$name: nothing delivered that was not acked");

    my $s;
    Test::Ldseg::wait_for(sub { $s = $t->status;
                                $s && $s->{queue}{events} == 0 }, 10);
    is(($s && $s->{dropped_reasons}{spool_corrupt} // 0)
       - ($before->{dropped_reasons}{spool_corrupt} // 0), 0,
       "$name: nothing dropped as spool_corrupt");
    is($s && $s->{queue}{events}, 0, "$name: queue drained");
}

###############################################################################

# 1. the reload removes ldseg_spool

my $old = spool_dir('spool1');
conf("ldseg_spool $old delay=0;");
$t->run;

my @acked = fill('rm');
is(scalar @acked, 300, 'removed: 300 events acked');

my $s = wait_spooled($t, 10);
Test::Ldseg::wait_for(sub { $s = $t->status; disk_only($s) }, 10);
ok(disk_only($s), 'removed: events on disk only (' . figures($s) . ')');

conf('');
ok($t->reload, 'removed: reload without ldseg_spool');

$mock->script(default => { status => 202 });
check_delivered('rm', \@acked, $s);

$t->stop;

# 2. the reload points ldseg_spool to another, empty directory

$mock->script(default => { status => 503 });

$old = spool_dir('spool2');
my $new = spool_dir('spool3');
conf("ldseg_spool $old delay=0;");
$t->run;

@acked = fill('mv');
is(scalar @acked, 300, 'moved: 300 events acked');

$s = wait_spooled($t, 10);
Test::Ldseg::wait_for(sub { $s = $t->status; disk_only($s) }, 10);
ok(disk_only($s), 'moved: events on disk only (' . figures($s) . ')');
my @old_files = spool_files($old);

conf("ldseg_spool $new delay=0;");
ok($t->reload, 'moved: reload with ldseg_spool in another directory');

# new events go to the new directory

my @late = map { "mv-late-$_" } 1 .. 5;
is(send_keys($t, \@late, pad => 300), 200, 'moved: 5 more events acked');
Test::Ldseg::wait_for(sub { spool_files($new) }, 10);
ok(scalar spool_files($new), 'moved: new payloads spooled in the new '
   . 'directory: ' . join(' ', spool_files($new)));
note("old directory before delivery: @old_files");

$mock->script(default => { status => 202 });
check_delivered('mv', [ @acked, @late ], $s);

###############################################################################
