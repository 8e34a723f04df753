#!/usr/bin/perl

# kill -9 of the master and every worker with ldseg_spool (delay=500ms)
# while LaunchDarkly is down:
#
# 1. events acked 2.5 s before the kill all arrive after the next start;
# 2. with the load still running at the kill, every event acked more than
#    delay + ldseg_flush_interval (+ a margin) before it arrives; the few
#    younger ones may be lost (the documented window) and are counted;
# 3. a corrupt spool (a file cut in the middle of its last record, garbage
#    appended to another, a flipped byte in a third) does not stop nginx:
#    error.log names the corrupt file, every intact record is delivered,
#    nothing crashes.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(21);
my $mock = $t->mock(default => { status => 503 });

my $spool = $t->testdir . '/spool';
mkdir $spool or die "mkdir $spool: $!\n";

$t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 2m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 10;
    ldseg_retry_max_delay 2s;
    ldseg_spool $spool delay=500ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id KILL9;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

$t->run;

###############################################################################

sub spool_files {
    opendir my $dh, $spool or return ();
    my @f = sort grep { /\.spool$/ && -s "$spool/$_" } readdir $dh;
    closedir $dh;
    return @f;
}

# the records of a spool file: [offset, length, [event keys]]

sub records {
    my ($file) = @_;
    open my $fh, '<:raw', "$spool/$file" or return ();
    local $/;
    my $d = <$fh> // '';
    close $fh;
    my ($off, @r) = (0);
    while ($off + 36 <= length $d && substr($d, $off, 4) eq 'LDS1') {
        my $len = unpack 'V', substr $d, $off + 8, 4;
        last if $len < 36 || $off + $len > length $d;
        my $rec = substr $d, $off, $len;
        push @r, [ $off, $len, [ $rec =~ /"key":"([^"]+)"/g ] ];
        $off += $len;
    }
    return @r;
}

sub failing {
    Test::Ldseg::wait_for(sub { grep { $_->{status} eq '503' } $mock->posts },
                          10);
}

###############################################################################

# 1. events acked 2.5 s before kill -9

my $res = $t->load(name => 'k', count => 100, clients => 2,
                   interval => 0.005)->wait(60);
is(scalar @{ $res->{acked} }, 200, '200 events acked');
failing();
sleep 2.5;

my @spooled = map { map { @{ $_->[2] } } records($_) } spool_files();
is(scalar @spooled, 200, 'all 200 events on disk 2.5 s later');

my @procs = ($t->master_pid, $t->workers);
$t->kill_all('KILL');
is(scalar(grep { Test::Ldseg::_alive($_) } @procs), 0,
   'every nginx process gone');

$mock->script(default => { status => 202 });
$t->run;

my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => $res->{acked},
    sent => scalar @{ $res->{sent} }, match => qr/^k-/, timeout => 20);
diag(Test::Ldseg::figures('kill -9, 2.5 s after the last ack', $r, $res));
is(scalar @{ $r->{missing} }, 0, 'every acked event delivered after kill -9')
    or diag(scalar(@{ $r->{missing} }) . ' missing');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');
Test::Ldseg::wait_for(sub { !spool_files() }, 10);
is(join(' ', spool_files()), '', 'spool empty after the replay');

# 2. kill -9 in the middle of the load

$mock->script(default => { status => 503 });
my $load = $t->load(name => 'l', clients => 2, duration => 30,
                    interval => 0.01);
sleep 4;
my $kill_at = time;
$t->kill_all('KILL');
$res = $load->stop(15);

$mock->script(default => { status => 202 });
$t->run;

my $window = 0.5 + 0.1 + 0.5;   # delay + flush interval + margin
my @old = grep { $res->{info}{$_}{time} + $res->{info}{$_}{latency}
                 < $kill_at - $window } @{ $res->{acked} };
my @young = grep { $res->{info}{$_}{time} + $res->{info}{$_}{latency}
                   >= $kill_at - $window } @{ $res->{acked} };

Test::Ldseg::wait_delivered(mock => $mock, acked => \@old,
    maybe => [ @young, @{ $res->{noanswer} } ], match => qr/^l-/,
    timeout => 20);
$r = Test::Ldseg::tally(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^l-/);
my %young = map { $_ => 1 } @young;
my @lost_old = grep { !$young{$_} } @{ $r->{missing} };
my ($oldest_lost) = sort { $b <=> $a }
    map { $kill_at - $res->{info}{$_}{time} - $res->{info}{$_}{latency} }
    @{ $r->{missing} };
diag(Test::Ldseg::figures('kill -9 under load', $r, $res)
     . sprintf(' | missing all acked in the last %.3f s before the kill'
               . ' (delay 0.5 s + flush 0.1 s)', $oldest_lost // 0));
cmp_ok(scalar @old, '>', 100, scalar(@old) . ' events acked well before');
is(scalar @lost_old, 0,
   'every event acked > delay + flush interval before the kill delivered')
    or diag(scalar(@lost_old) . ' missing, e.g. '
            . join(' ', map { sprintf '%s(%.2fs before)', $_,
                              $kill_at - $res->{info}{$_}{time} }
                        @lost_old[0 .. 4]));
is(join(',', @{ $r->{unacked} }), '', 'nothing delivered that was not acked');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');

Test::Ldseg::wait_for(sub { my $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 10);

# 3. a corrupt spool

$mock->script(default => { status => 503 });
$res = $t->load(name => 'c', count => 150, clients => 3,
                interval => 0.002)->wait(60);
is(scalar @{ $res->{acked} }, 450, '450 events acked');
failing();
sleep 2.5;
$t->kill_all('KILL');

my @files = spool_files();
my %rec = map { $_ => [ records($_) ] } @files;
my @all = map { @{ $_->[2] } } map { @{ $rec{$_} } } @files;
is(scalar(grep { /^c-/ } @all), 450, 'all 450 events on disk: '
   . join(' ', map { "$_(" . @{ $rec{$_} } . ' records)' } @files));

# make the damage: cut the last record of the biggest file in half, append
# garbage to the next, flip a byte in the middle record of the third (or of
# the last file when there are fewer)

my @by_size = sort { @{ $rec{$b} } <=> @{ $rec{$a} } } @files;
my (%lost, @damage);

{
    my $f = $by_size[0];
    my $last = $rec{$f}[-1];
    truncate "$spool/$f", $last->[0] + int($last->[1] / 2) or die "$!";
    $lost{$_} = 1 for @{ $last->[2] };
    push @damage, "$f: last record cut";
}

if (@by_size > 1) {
    my $f = $by_size[1];
    open my $fh, '>>:raw', "$spool/$f" or die "$!";
    print $fh "LDS1" . ("\xff" x 40) . "garbage\n" x 10;
    close $fh;
    push @damage, "$f: garbage appended";
}

my $third = @by_size > 2 ? $by_size[2] : $by_size[-1];
if (@{ $rec{$third} } >= 3) {
    my $f = $third;
    my @r = @{ $rec{$f} };
    my $mid = int(@r / 2);
    open my $fh, '+<:raw', "$spool/$f" or die "$!";
    my $pos = $r[$mid][0] + $r[$mid][1] - 10;
    seek $fh, $pos, 0;
    read $fh, my $b, 1;
    seek $fh, $pos, 0;
    print $fh chr(ord($b) ^ 0x20);
    close $fh;
    # the rest of the file from the corrupt record on is skipped
    $lost{$_} = 1 for map { @{ $_->[2] } } @r[$mid .. $#r];
    push @damage, "$f: byte flipped in record $mid of " . scalar(@r);
}

note("spool damage: " . join('; ', @damage));

my @intact = grep { !$lost{$_} } grep { /^c-/ } @all;
my $log0 = length $t->read_file('error.log');

$mock->script(default => { status => 202 });
eval { $t->run };
is($@, '', 'nginx starts with a corrupt spool');

$r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@intact,
    maybe => [ keys %lost ], sent => 450, match => qr/^c-/, timeout => 20);
diag(Test::Ldseg::figures('corrupt spool (acked = events in intact records)', $r,
                          $res)
     . sprintf(' | in damaged records: %d', scalar keys %lost));
is(scalar @{ $r->{missing} }, 0, 'every event of an intact record delivered')
    or diag(scalar(@{ $r->{missing} }) . ' missing');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');

my $log = substr $t->read_file('error.log'), $log0;
my @corrupt = $log =~ /^(.*spool file .* is corrupt.*)$/mg;
cmp_ok(scalar @corrupt, '>=', 1, 'error.log: corrupt spool file reported');
note($_) for @corrupt;
like($log, qr/\Q$by_size[0]\E/, 'the cut file is named');
unlike($log, qr/exited on signal|\[alert\]|\[crit\]/, 'no crash, no alert');

my $s = $t->status;
ok($s, 'status answers');
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 10);
is($s && $s->{queue}{events}, 0, 'queue drained');
Test::Ldseg::wait_for(sub { !spool_files() }, 10);
is(join(' ', spool_files()), '', 'spool empty afterwards');

###############################################################################
