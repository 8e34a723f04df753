#!/usr/bin/perl

# "nginx -s quit" while LaunchDarkly is down.
#
# With ldseg_spool: quit finishes in bounded time (ldseg_shutdown_timeout
# 2s), the undelivered events are in the spool, and the next start (same
# configuration, LaunchDarkly up) sends every acked event and empties the
# spool (status "replayed").  The same when LaunchDarkly hangs with a POST
# in flight at quit.
#
# Without a spool: quit with a hung LaunchDarkly still finishes within
# ldseg_shutdown_timeout + ldseg_timeout + a margin (the events are lost,
# as the README says).

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(24);
my $mock = $t->mock(default => { status => 503 });

my $spool = $t->testdir . '/spool';
mkdir $spool or die "mkdir $spool: $!\n";

my $conf = <<'EOF';
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
    ldseg_retry_max_delay 2s;
    ldseg_shutdown_timeout 2s;
    ldseg_timeout 3s;
    %%SPOOL%%

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id QUIT;
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

sub spool_files {
    opendir my $dh, $spool or return ();
    my @f = grep { /\.spool$/ && -s "$spool/$_" } readdir $dh;
    closedir $dh;
    return @f;
}

sub quit_timed {
    my $t0 = time;
    $t->stop;
    my $errs = join "\n", @{ $t->{_stop_errors} || [] };
    $t->{_stop_errors} = [];
    return (time - $t0, $errs);
}

sub send_n {
    my ($name, $n) = @_;
    return $t->load(name => $name, count => $n, interval => 0.005,
                    clients => 2)->wait(60);
}

conf("ldseg_spool $spool delay=500ms;");
$t->run;

###############################################################################

# 1. with a spool, LaunchDarkly answers 503

my $res = send_n('q', 100);
is(scalar @{ $res->{acked} }, 200, '200 events acked');
Test::Ldseg::wait_for(sub { grep { $_->{status} eq '503' } $mock->posts }, 10);
ok(scalar(grep { $_->{status} eq '503' } $mock->posts), 'POSTs fail (503)');

my ($took, $errs) = quit_timed();
cmp_ok($took, '<', 10, sprintf 'quit finished in %.1f s (< 10 s)', $took);
is($errs, '', 'nginx quit cleanly');
my @files = spool_files();
cmp_ok(scalar @files, '>', 0, 'spool holds files: ' . join(' ', @files));

# LaunchDarkly up, start again

$mock->script(default => { status => 202 });
my $log0 = length $t->read_file('error.log');
$t->run;

my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => $res->{acked},
    sent => scalar @{ $res->{sent} }, match => qr/^q-/, timeout => 20);
diag(Test::Ldseg::figures('quit, spool, LD 503', $r, $res));
is(scalar @{ $r->{missing} }, 0, 'every acked event delivered after restart')
    or diag(scalar(@{ $r->{missing} }) . ' missing');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');
is(join(',', @{ $r->{unacked} }), '', 'nothing unexpected delivered');

Test::Ldseg::wait_for(sub { !spool_files() }, 10);
is(join(' ', spool_files()), '', 'spool empty after the replay');
my $s = $t->status;
cmp_ok($s && $s->{replayed} // 0, '>', 0,
       'status: replayed ' . ($s && $s->{replayed} // 0));
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 10);
is(($s && $s->{queue}{events}) . ' ' . ($s && $s->{spool}{events}), '0 0',
   'queue and spool drained');
like(substr($t->read_file('error.log'), $log0),
     qr/spooled events from .* will be sent/, 'error.log: replay notice');

# 2. with a spool, LaunchDarkly hangs: a POST is in flight at quit

$mock->script(default => { hang => 1 });
$res = send_n('h', 50);
is(scalar @{ $res->{acked} }, 100, '100 events acked');
Test::Ldseg::wait_for(sub { grep { $_->{status} =~ /hang|aborted/ }
                            $mock->posts }, 10);
ok(scalar(grep { $_->{status} =~ /hang|aborted/ } $mock->posts),
   'a POST hangs in flight');

($took, $errs) = quit_timed();
cmp_ok($took, '<', 10, sprintf 'quit with a hung POST: %.1f s (< 10 s)',
       $took);
is($errs, '', 'nginx quit cleanly');
cmp_ok(scalar spool_files(), '>', 0, 'spool holds files');

$mock->script(default => { status => 202 });
$t->run;
$r = Test::Ldseg::wait_delivered(mock => $mock, acked => $res->{acked},
    sent => scalar @{ $res->{sent} }, match => qr/^h-/, timeout => 20);
diag(Test::Ldseg::figures('quit, spool, LD hangs', $r, $res));
is(scalar @{ $r->{missing} }, 0, 'every acked event delivered after restart')
    or diag(scalar(@{ $r->{missing} }) . ' missing');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');
Test::Ldseg::wait_for(sub { !spool_files() }, 10);
is(join(' ', spool_files()), '', 'spool empty after the replay');

# 3. no spool, LaunchDarkly hangs: quit within shutdown + timeout + margin

$t->stop;
conf('');
$t->run;

$mock->script(default => { hang => 1 });
$res = send_n('n', 20);
is(scalar @{ $res->{acked} }, 40, '40 events acked');
Test::Ldseg::wait_for(sub { grep { $_->{status} eq 'hang'
                                   && $_->{events}[0]{key} =~ /^n-/ }
                            $mock->posts }, 10);
ok(scalar(grep { $_->{status} eq 'hang' } $mock->posts),
   'a POST hangs in flight');

($took, $errs) = quit_timed();
cmp_ok($took, '<', 2 + 3 + 3, sprintf 'quit without spool, hung LaunchDarkly:'
       . ' %.1f s (< shutdown 2 s + timeout 3 s + 3 s)', $took);
is($errs, '', 'nginx quit cleanly');
diag(sprintf 'quit timings: no spool + hung LD %.1f s', $took);

$mock->script(default => { status => 202 });
$t->run;
$r = Test::Ldseg::tally(mock => $mock, acked => $res->{acked},
                        match => qr/^n-/);
note(Test::Ldseg::figures('quit, no spool, LD hangs (loss documented)', $r,
                          $res));

###############################################################################
