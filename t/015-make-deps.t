#!/usr/bin/perl

# A newcomer's first `make`: without the build dependencies it says which
# command installs them, instead of failing in
# "cp: cannot stat '/usr/share/nginx/src'".
#
# 1. no nginx source tree (NGX_SRC pointed at a missing directory): make
#    fails, names the directory, `make deps-build` and the apt-get line,
#    and copies nothing;
# 2. nginx's configure failing (a library missing): make shows configure's
#    last lines and the same hint, and leaves no objs/Makefile behind, so
#    the next `make` configures again;
# 3. .ci/deps.sh --build run by a user who cannot install prints the
#    apt-get line with what is missing and fails (when run as root).
#
# Each make builds in a directory of its own (BUILD=...), not in build/.

use strict;
use warnings;

use Test::More;

use Cwd qw(abs_path);
use FindBin;
use File::Temp qw(tempdir);
use POSIX ();

my $ROOT = abs_path("$FindBin::Bin/..");
my $tmp = tempdir('ldseg-test-make-XXXXXXXX', TMPDIR => 1, CLEANUP => 1);

plan(tests => 12);

sub make_out {
    my (@args) = @_;
    my $cmd = join ' ', 'make', '-C', "'$ROOT'", '--no-print-directory',
        map { "'$_'" } @args;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out // '');
}


###############################################################################
# 1. no nginx source tree

my ($rc, $out) = make_out("BUILD=$tmp/b1", "NGX_SRC=$tmp/missing");

isnt($rc, 0, 'no nginx source: make fails');
like($out, qr{no nginx source tree in \Q$tmp\E/missing.*nginx-dev}s,
     'it names the missing tree and nginx-dev');
like($out, qr{make deps-build}, 'it offers make deps-build');
like($out, qr{apt-get\ install\ [^\n]*\bnginx-dev\b[^\n]*
              \blibcurl4-openssl-dev\b}x,
     'it prints the apt-get line');
unlike($out, qr/cannot stat/, 'no "cannot stat"');
ok(!-e "$tmp/b1/nginx", 'nothing copied');


###############################################################################
# 2. configure fails (as nginx's does when the module's config does not
#    find libcurl)

my $fake = "$tmp/fake-nginx";
mkdir $fake or die "$fake: $!\n";
write_file("$fake/conf_flags", "NGX_CONF_FLAGS=()\n");
write_file("$fake/configure", "#!/bin/sh\n"
    . "echo 'checking for libcurl ... not found'\n"
    . "echo './configure: error: the ldseg module requires libcurl;'\n"
    . "exit 1\n");
chmod 0755, "$fake/configure";

($rc, $out) = make_out("BUILD=$tmp/b2", "NGX_SRC=$fake");

isnt($rc, 0, 'configure fails: make fails');
like($out, qr{error: the ldseg module requires libcurl},
     "it shows configure's error");
like($out, qr{configure failed.*make deps-build.*apt-get install}s,
     'and the hint');
ok(!-e "$tmp/b2/nginx/objs/Makefile", 'no objs/Makefile left behind');


###############################################################################
# 3. deps.sh by a user who cannot install

SKIP: {
    skip 'needs root to run as nobody', 2 unless $> == 0;

    my $nobody = getpwnam('nobody');
    skip 'no user nobody', 2 unless defined $nobody;

    my $pid = open my $fh, '-|';
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        POSIX::setgid(65534);
        POSIX::setuid($nobody);
        exec('sh', "$ROOT/.ci/deps.sh", '--build', 'ldseg-no-such-package')
            or POSIX::_exit(127);
    }
    local $/;
    $out = <$fh> // '';
    close $fh;

    is($? >> 8, 1, 'deps.sh --build as nobody with a package missing: exit 1');
    like($out, qr{needs root.*apt-get install\s+ldseg-no-such-package}s,
         'it prints the apt-get line with what is missing');
}


###############################################################################

sub write_file {
    my ($file, $c) = @_;
    open my $fh, '>', $file or die "$file: $!\n";
    print {$fh} $c;
    close $fh or die "$file: $!\n";
}
