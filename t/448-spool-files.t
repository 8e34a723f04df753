#!/usr/bin/perl

# Spool files and foreign entries in the spool directory:
#
# 1. spool files are created mode 0600 (they hold events, and the spool
#    directory may be readable by others);
# 2. a FIFO named like a spool file ("ldseg-00000098.spool") and a
#    directory named like one ("ldseg-00000099.spool") in the spool
#    directory: nginx starts within a few seconds (a FIFO must not hang the
#    start in open() or read()), error.log says each was skipped, both are
#    left alone, the real spool files are replayed and delivered, and new
#    events are delivered too.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Spool qw(spool_files send_keys wait_spooled start_bounded
                          file_mode);

use POSIX qw(mkfifo);
use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(15);
my $mock = $t->mock(default => { status => 503 });

my $spool = $t->testdir . '/spool';
mkdir $spool or die "mkdir $spool: $!\n";

my $fifo = 'ldseg-00000098.spool';
my $dir = 'ldseg-00000099.spool';

# the skip notices are expected, whatever their level

$t->allow_log(qr/ldseg-0000009[89]\.spool.*(skip|ignor)/i,
              qr/(skip|ignor).*ldseg-0000009[89]\.spool/i);

$t->write_file_expand('nginx.conf', <<"EOF2");
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 10;
    ldseg_retry_max_delay 1s;
    ldseg_spool $spool delay=0;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id SPOOLFILES;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF2

$t->run;

###############################################################################

# 1. file modes

my @acked;
for my $i (1 .. 10) {
    my @k = map { "f-$i-$_" } 1 .. 10;
    push @acked, @k if send_keys($t, \@k) == 200;
}
is(scalar @acked, 100, '100 events acked');

my $s = wait_spooled($t, 10);
my @files = spool_files($spool);
ok(scalar @files, 'spool files: ' . join(' ', @files));
is(join(' ', map { "$_:" . (file_mode("$spool/$_") // '?') } @files),
   join(' ', map { "$_:0600" } @files), 'spool files are mode 0600');

# 2. a FIFO and a directory named like spool files

$t->stop;
@files = spool_files($spool);
ok(scalar @files, 'spool files after quit: ' . join(' ', @files));

mkfifo("$spool/$fifo", 0600) or die "mkfifo: $!\n";
mkdir "$spool/$dir" or die "mkdir: $!\n";

$mock->script(default => { status => 202 });
my $log0 = length $t->read_file('error.log');

my ($started, $took, $why) = start_bounded($t, 5);
ok($started, sprintf('nginx starts with a FIFO and a directory in the '
                     . 'spool (%.1f s%s)', $took, $why ? ", $why" : ''));

my @log = split /\n/, substr($t->read_file('error.log'), $log0);
my @skip = grep { /skip|ignor/i } @log;
note($_) for @skip;
ok(scalar(grep { /\Q$fifo\E/ } @skip), "error.log: $fifo (a FIFO) skipped");
ok(scalar(grep { /\Q$dir\E/ } @skip),
   "error.log: $dir (a directory) skipped");

ok(-p "$spool/$fifo" && -d "$spool/$dir",
   'the FIFO and the directory are left alone');

# the spool files are replayed, new events are delivered

$s = undef;
my @new = map { "n-$_" } 1 .. 10;
is($started && send_keys($t, \@new), 200, '10 new events acked');

my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@acked,
    match => qr/^f-/, timeout => $started ? 15 : 1);
diag(Test::Ldseg::figures('replayed next to a FIFO', $r));
is(scalar @{ $r->{missing} }, 0, 'every spooled event delivered')
    or diag(scalar(@{ $r->{missing} }) . ' missing');

$r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@new,
    match => qr/^n-/, timeout => $started ? 15 : 1);
is(scalar @{ $r->{missing} }, 0, 'every new event delivered');

Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 10)
    if $started;
is($s && $s->{queue}{events}, 0, 'queue drained');
Test::Ldseg::wait_for(sub { !grep { -e "$spool/$_" } @files }, 10)
    if $started;
is(join(' ', grep { -e "$spool/$_" } @files), '',
   'replayed spool files removed once delivered');

$t->stop;
is(join(' ', spool_files($spool)), '', 'no spool file left after quit');
ok(-p "$spool/$fifo" && -d "$spool/$dir",
   'the FIFO and the directory are still there after quit');

###############################################################################
