package Test::Ldseg::Reload;

# Reloads that are meant to fail.  Test::Ldseg::reload() waits for the old
# workers to exit, which never happens when the master rejects the new
# configuration; this waits for the master's reason instead.
#
#     use Test::Ldseg::Reload qw(reload_refused);
#
#     my $r = reload_refused($t, qr/still could not bind\(\)/, 15);
#     ok($r->{refused}, 'reload refused');
#     is("@{ $r->{after} }", "@{ $r->{before} }", 'old workers stay');
#
#     # LaunchDarkly back once the new workers run, before the old ones quit
#     ok(reload_then($t, sub { $mock->script(default => { status => 202 }) }),
#        'reload');
#
# Core Perl only.

use strict;
use warnings;

use Exporter qw(import);
use Time::HiRes qw(time sleep);

use Test::Ldseg;

our @EXPORT_OK = qw(reload_refused reload_then);


# reload_refused($t, $re, $timeout): sends HUP to the master and waits until
# what error.log gained since then matches $re (the master refused the new
# configuration) or the reload went through anyway (new workers started),
# whichever comes first, at most $timeout seconds (default 15).  Returns
#   { refused => 1 if $re matched, done => 1 if new workers started,
#     log => error.log text written since the HUP,
#     before => [worker pids], after => [worker pids a moment later] }

sub reload_refused {
    my ($t, $re, $timeout) = @_;

    my @before = $t->workers;
    my %before = map { $_ => 1 } @before;
    my $off = length $t->read_file('error.log');

    kill 'HUP', $t->master_pid;

    my ($refused, $done, $log) = (0, 0, '');

    Test::Ldseg::wait_for(sub {
        $log = substr $t->read_file('error.log'), $off;
        return $refused = 1 if $log =~ $re;
        my @now = $t->workers;
        return $done = 1 if grep { !$before{$_} } @now;
        return 0;
    }, $timeout || 15);

    # the master goes back to its loop right after it logs the reason; give
    # a reload that went on anyway the time to start its workers

    sleep 0.5;
    $log = substr $t->read_file('error.log'), $off;

    return { refused => $refused, done => $done, log => $log,
             before => \@before, after => [ $t->workers ] };
}


# reload_then($t, $cb, $timeout): "nginx -s reload" like Test::Ldseg::reload,
# but calls $cb as soon as the new workers run (the master has built the new
# zones), while the old workers may still be finishing.  Returns a hashref
# (true) when the old workers are all gone and new ones run, with hup, up
# (new workers seen) and done times, old and new worker pids; 0 otherwise.

sub reload_then {
    my ($t, $cb, $timeout) = @_;

    my @old = $t->workers;
    my %old = map { $_ => 1 } @old;
    my $hup = time;

    kill 'HUP', $t->master_pid;

    my $up = Test::Ldseg::wait_for(sub { grep { !$old{$_} } $t->workers },
                                   $timeout || 20);
    my $up_at = time;
    $cb->() if $cb;
    return 0 unless $up;

    Test::Ldseg::wait_for(sub { !grep { Test::Ldseg::_alive($_) } @old },
                          $timeout || 20)
        or return 0;

    return { hup => $hup, up => $up_at, done => time, old => \@old,
             new => [ $t->workers ] };
}


1;
