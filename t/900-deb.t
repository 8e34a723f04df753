#!/usr/bin/perl

# The Debian package (make deb, debian/):
#
# 1. `make deb` builds build/libnginx-mod-http-ldseg_<version>_<arch>.deb,
#    the version being the module's (src/ldseg.h);
# 2. lintian finds no error in it (its warnings are printed);
# 3. it depends on the nginx ABI dh_nginx computes from nginx-dev, holds
#    the module in /usr/lib/nginx/modules/, its load file in
#    /usr/share/nginx/modules-available/, the README and the example
#    configurations in /usr/share/doc/, and maintainer scripts that enable
#    the load file through /etc/nginx/modules-enabled/;
# 4. extracted with dpkg-deb -x: nginx -t accepts the packaged example
#    configuration with the packaged module, and the ingestion and delivery
#    tests (t/1*.t t/2*.t, or TEST_LDSEG_DEB_TESTS) pass against the
#    extracted .so (TEST_LDSEG_MODULE);
# 5. with TEST_LDSEG_DEB_INSTALL=1 (root; .ci/run sets it): dpkg -i links
#    /etc/nginx/modules-enabled/50-mod-http-ldseg.conf, a configuration that
#    includes modules-enabled/*.conf can use the module, dpkg -r disables
#    the link and dpkg --purge removes it.  Not by default: it changes the
#    machine's nginx.

use strict;
use warnings;

use Test::More;

use Cwd qw(abs_path);
use FindBin;
use File::Temp qw(tempdir);
use lib "$FindBin::Bin/lib";

my $ROOT = abs_path("$FindBin::Bin/..");
my $PKG = 'libnginx-mod-http-ldseg';
my $NGINX = '/usr/sbin/nginx';

for my $c (qw(dpkg-buildpackage dh_nginx lintian dpkg-deb)) {
    next if grep { -x "$_/$c" } split /:/, $ENV{PATH};
    plan(skip_all => "$c not found (make deps installs it)");
}
plan(skip_all => "no $NGINX") unless -x $NGINX;

# building, then a prove of its own; bounded all the same

$SIG{ALRM} = sub { die "t/900-deb.t timed out\n" };
alarm($ENV{TEST_LDSEG_DEB_TIMEOUT} || 900);

my $install = $ENV{TEST_LDSEG_DEB_INSTALL} && $> == 0;

plan(tests => 19 + ($install ? 7 : 0));

my ($version) = slurp("$ROOT/src/ldseg.h")
    =~ /^#define LDSEG_VERSION\s+"([^"]+)"/m;
chomp(my $arch = `dpkg --print-architecture`);
my ($abi) = slurp('/usr/share/nginx/src/debian/libnginx-mod.abisubstvars')
    =~ /^nginx:abi=(\S+)/m;

my $deb = "$ROOT/build/${PKG}_${version}_${arch}.deb";
my $tmp = tempdir('ldseg-test-deb-XXXXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $tmp;


###############################################################################
# 1. build

unlink $deb;
my $out = run("make -C '$ROOT' deb 2>&1");
is($?, 0, 'make deb succeeds') or diag(tail($out, 30));
ok(-f $deb, "build/${PKG}_${version}_${arch}.deb") or exit 1;

my @stray = glob("$ROOT/../${PKG}_*");
is("@stray", '', 'nothing written beside the source tree');


###############################################################################
# 2. lintian

$out = run("lintian --pedantic --info '$deb' 2>&1");
my @errors = grep { /^E: / } split /\n/, $out;
is(join("\n", @errors), '', 'lintian: no errors');
my @rest = grep { /^[WIP]: / } split /\n/, $out;
diag("lintian:\n" . join("\n", @rest)) if @rest;


###############################################################################
# 3. what the package holds

my %f = fields($deb);

is($f{Package}, $PKG, 'Package');
is($f{Version}, $version, "Version $version, as src/ldseg.h");
like($f{Depends} // '', qr/(?:^|,\s*)\Q$abi\E(?:,|$)/,
     "Depends on $abi, the ABI of nginx-dev");

my %files = map { s{^\./}{/}r => 1 }
            map { (split ' ', $_, 6)[5] }
            split /\n/, run("dpkg-deb -c '$deb'");

ok($files{'/usr/lib/nginx/modules/ngx_http_ldseg_module.so'},
   'the module in /usr/lib/nginx/modules/');
ok($files{"/usr/share/doc/$PKG/README.md.gz"}, 'README in /usr/share/doc/');
ok($files{"/usr/share/doc/$PKG/examples/conf.d-ldseg.conf"}
   && $files{"/usr/share/doc/$PKG/examples/example.conf"},
   'example configurations in /usr/share/doc/');

my $x = "$tmp/root";
run("dpkg-deb -x '$deb' '$x'");
is($?, 0, 'dpkg-deb -x');

is(slurp("$x/usr/share/nginx/modules-available/mod-http-ldseg.conf"),
   "load_module modules/ngx_http_ldseg_module.so;\n",
   'modules-available/mod-http-ldseg.conf loads the module');

run("dpkg-deb -e '$deb' '$tmp/control'");
like(slurp("$tmp/control/postinst"),
     qr{mod-http-ldseg\.conf:50-mod-http-ldseg\.conf.*
        ln\s+-sf\s+/usr/share/nginx/modules-available/\$from\s*\\\s*
        /etc/nginx/modules-enabled/\$to}xs,
     'postinst links it into /etc/nginx/modules-enabled/');
like(slurp("$tmp/control/prerm"), qr{modules-enabled/\$to\.removed},
     'prerm disables it');
like(slurp("$tmp/control/postrm"), qr{"\$1" = "purge"},
     'postrm removes the link on purge');


###############################################################################
# 4. the extracted module

my $so = "$x/usr/lib/nginx/modules/ngx_http_ldseg_module.so";

# the packaged Debian example, as /etc/nginx/nginx.conf would include it

mkdir "$tmp/spool";
mkdir "$tmp/prefix";
my $example = slurp("$x/usr/share/doc/$PKG/examples/conf.d-ldseg.conf");
$example =~ s{/var/spool/ldseg}{$tmp/spool}g;
write_file("$tmp/conf.d-ldseg.conf", $example);
write_file("$tmp/nginx.conf", "load_module $so;\n"
    . "error_log $tmp/error.log;\npid $tmp/nginx.pid;\n"
    . "events {}\nhttp {\n    include $tmp/conf.d-ldseg.conf;\n}\n");

$out = run("$NGINX -t -p '$tmp/prefix/' -c '$tmp/nginx.conf' -e stderr 2>&1");
is($?, 0, 'nginx -t: the packaged example with the packaged module')
    or diag($out);
like($out, qr/test is successful/, 'nginx -t: test is successful');

# the ingestion and delivery tests against the extracted .so, with Debian's
# nginx (what the package is for)

my $which = $ENV{TEST_LDSEG_DEB_TESTS} || 't/1*.t t/2*.t';
my @tests = map { glob("$ROOT/$_") } split ' ', $which;
{
    local $ENV{TEST_LDSEG_MODULE} = $so;
    local $ENV{TEST_NGINX_BINARY};
    local $ENV{TEST_NGINX_STATIC};
    delete $ENV{TEST_NGINX_BINARY};
    delete $ENV{TEST_NGINX_STATIC};

    my $jobs = $ENV{TEST_LDSEG_DEB_JOBS} || 2;
    $out = run("cd '$ROOT' && prove -j$jobs "
               . join(' ', map { "'$_'" } @tests) . ' 2>&1');
}
is($?, 0, scalar(@tests) . " test files ($which) pass against the "
   . 'extracted module') or diag(tail($out, 40));
my ($n) = $out =~ /Files=\d+, Tests=(\d+)/;
ok(($n // 0) > 0, 'they ran: ' . ($n // 0) . ' tests');


###############################################################################
# 5. installed (TEST_LDSEG_DEB_INSTALL=1)

if ($install) {
    my $link = '/etc/nginx/modules-enabled/50-mod-http-ldseg.conf';

    if (`dpkg-query -W -f='\${Status}' $PKG 2>/dev/null`
        =~ /install ok installed/)
    {
        diag("$PKG is installed already: not touching it");
        exit 1;
    }

    $out = run("dpkg -i '$deb' 2>&1");
    is($?, 0, 'dpkg -i') or diag($out);
    is(readlink($link) // '',
       '/usr/share/nginx/modules-available/mod-http-ldseg.conf',
       "$link enabled");

    # Debian's nginx.conf includes modules-enabled/*.conf at the top

    write_file("$tmp/installed.conf",
        "include /etc/nginx/modules-enabled/*.conf;\n"
        . "error_log $tmp/error.log;\npid $tmp/nginx.pid;\n"
        . "events {}\nhttp {\n    include $tmp/conf.d-ldseg.conf;\n}\n");
    # Debian's prefix, where modules/ is /usr/lib/nginx/modules

    $out = run("$NGINX -t -c '$tmp/installed.conf' -e stderr 2>&1");
    is($?, 0, 'nginx -t: the installed module, loaded through '
       . 'modules-enabled') or diag($out);

    $out = run("dpkg -r $PKG 2>&1");
    is($?, 0, 'dpkg -r') or diag($out);
    ok(!-e $link && -l "$link.removed", 'removed: the link disabled');

    $out = run("dpkg --purge $PKG 2>&1");
    is($?, 0, 'dpkg --purge') or diag($out);
    ok(!-l "$link.removed" && !-l $link
       && !-e '/usr/lib/nginx/modules/ngx_http_ldseg_module.so',
       'purged: no link, no module');
}


###############################################################################

sub run {
    my ($cmd) = @_;
    my $o = `$cmd`;
    return $o // '';
}

sub fields {
    my ($file) = @_;
    my %h;
    for (split /\n/, run("dpkg-deb -f '$file'")) {
        $h{$1} = $2 if /^(\S+):\s*(.*)$/;
    }
    return %h;
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    my $c = <$fh>;
    close $fh;
    return $c // '';
}

sub write_file {
    my ($file, $c) = @_;
    open my $fh, '>', $file or die "$file: $!\n";
    print {$fh} $c;
    close $fh or die "$file: $!\n";
}

sub tail {
    my ($s, $n) = @_;
    my @l = split /\n/, $s;
    splice @l, 0, @l - $n if @l > $n;
    return join "\n", @l;
}
