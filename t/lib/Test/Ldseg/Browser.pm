package Test::Ldseg::Browser;

# What the browser tests (t/340-status-html.t, t/510-browser.t,
# t/630-export-browser.t) need before they start nginx: node, Debian's
# chromium and t/browser/node_modules as t/browser/package.json pins it
# (installed with "npm ci" when it is missing or holds other versions),
# and a way to run node scripts with a deadline.
#
#     use Test::Ldseg::Browser qw(browser_setup run_bounded slurp);
#
#     my $b = browser_setup();      # skips or fails the test, or returns
#     # { node, chromium, npm, dir => t/browser, pins => {package => ver} }
#
#     my $rc = run_bounded(dir => $b->{dir}, out => "$dir/browser.out",
#                          err => "$dir/browser.err", timeout => 90,
#                          cmd => [ $b->{node}, "$b->{dir}/browser.js",
#                                   $json ]);
#
# Without node or chromium the test is skipped, except under CI=true,
# where that fails; an "npm ci" that does not install the pinned versions
# fails it.  TEST_LDSEG_NODE, TEST_LDSEG_NPM and TEST_LDSEG_CHROMIUM name
# other binaries.
#
# Core Perl only.

use strict;
use warnings;

use Exporter qw(import);
use File::Spec;
use FindBin;
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(time sleep);

our @EXPORT_OK = qw(browser_setup run_bounded slurp json_file which broken);


my $CI = ($ENV{CI} // '') =~ /^(1|true|yes)$/i;


sub which {
    my ($name) = @_;
    return -x $name ? $name : undef if $name =~ m{/};
    for my $d (File::Spec->path) {
        return "$d/$name" if -f "$d/$name" && -x _;
    }
    return undef;
}


# outside CI a machine without node or chromium skips; CI must run it all

sub cannot_run {
    my ($why, $out) = @_;
    if ($CI) {
        plan(tests => 1);
        fail("CI=true: the browser test runs");
        diag($why . ($out ? "\n$out" : ''));
        exit 0;
    }
    plan(skip_all => $why);
}


# something the test needs is there but does not work: one failure

sub broken {
    my ($what, $out) = @_;
    plan(tests => 1);
    fail($what);
    diag($out) if $out;
    exit 0;
}


sub json_file {
    my ($file) = @_;
    open my $fh, '<', $file or return undef;
    local $/;
    my $v = eval { JSON::PP->new->decode(<$fh>) };
    close $fh;
    return $v;
}


sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    binmode $fh;
    local $/;
    my $c = <$fh> // '';
    close $fh;
    return $c;
}


# run_bounded(cmd => [...], out => FILE, err => FILE, in => FILE,
# dir => DIR, timeout => SECONDS): runs cmd in dir (TZ=UTC, its own
# process group) with stdin from in (or /dev/null), stdout to out and
# stderr to err (or out); kills the group after timeout seconds.
# Returns the exit status, -1 when it timed out.

sub run_bounded {
    my (%o) = @_;

    my $pid = fork();
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        chdir $o{dir} or POSIX::_exit(126) if $o{dir};
        open STDIN, '<', $o{in} // '/dev/null' or POSIX::_exit(126);
        open STDOUT, '>', $o{out} or POSIX::_exit(126);
        if ($o{err}) {
            open STDERR, '>', $o{err} or POSIX::_exit(126);
        } else {
            open STDERR, '>&', \*STDOUT;
        }
        $ENV{TZ} = 'UTC';
        POSIX::setpgid(0, 0);
        exec(@{ $o{cmd} }) or POSIX::_exit(127);
    }

    my $deadline = time + $o{timeout};
    while (time < $deadline) {
        return $? >> 8 if waitpid($pid, WNOHANG) == $pid;
        sleep 0.1;
    }
    kill 'KILL', -$pid, $pid;
    waitpid($pid, 0);
    return -1;
}


sub browser_setup {
    my $dir = "$FindBin::Bin/browser";

    my $node = which($ENV{TEST_LDSEG_NODE} || 'node')
        or cannot_run('node is not installed (.ci/deps.sh installs Debian\'s'
                      . ' nodejs and npm)');

    my $chromium = which($ENV{TEST_LDSEG_CHROMIUM} || 'chromium')
        or cannot_run('chromium is not installed (.ci/deps.sh installs'
                      . ' Debian\'s chromium)');

    my $pins = json_file("$dir/package.json")->{dependencies};

    my $installed = sub {
        for my $p (sort keys %$pins) {
            my $v = json_file("$dir/node_modules/$p/package.json");
            return 0 unless $v && $v->{version} eq $pins->{$p};
        }
        return 1;
    };

    my $npm = which($ENV{TEST_LDSEG_NPM} || 'npm');

    if (!$installed->()) {
        my $log = File::Spec->catfile(File::Spec->tmpdir,
                                      "ldseg-npm-ci-$$.log");
        my $rc = $npm
            ? run_bounded(dir => $dir, out => $log, timeout => 300,
                          cmd => [ $npm, 'ci', '--no-audit', '--no-fund',
                                   '--loglevel=error' ])
            : 127;
        my $out = slurp($log);
        unlink $log;

        broken('npm ci in t/browser installs '
               . join(', ', map { "$_ $pins->{$_}" } sort keys %$pins),
               $npm ? "npm ci: " . ($rc < 0 ? 'timed out after 300 s'
                                             : "exit $rc") . "\n$out"
                    : 'npm is not installed (.ci/deps.sh installs it)')
            unless $installed->();
    }

    return { node => $node, chromium => $chromium, npm => $npm,
             dir => $dir, pins => $pins };
}


1;
