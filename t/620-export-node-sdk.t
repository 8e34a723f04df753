#!/usr/bin/perl

# The export with LaunchDarkly's real Node.js server SDK,
# @launchdarkly/node-server-sdk (pinned in t/clients/package.json, run by
# t/clients/ld-node-sdk.js) with its TestData source (no network) and
# eventsUri pointed at nginx:
#
# - the SDK's posts (/bulk, and its /diagnostic) reach the mock LaunchDarkly
#   unchanged, with the SDK key and payload ID, and the SDK logs no error;
# - every feature event (a flag with trackEvents, evaluated for a user and a
#   multi context) and custom event (track() with and without a metric
#   value) of those posts arrives at the mock Segment as one track message
#   built from that very event, field by field; identify, index and summary
#   events are counted as skipped; the diagnostic post is not exported.
#
# Needs node and npm (Debian's nodejs, npm); skipped without node.
# t/clients/node_modules is installed with "npm ci" when the SDK is missing
# or of another version.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::LdsegMock;

use File::Spec;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

###############################################################################
# node, npm and the SDK

my $CLIENTS = "$FindBin::Bin/clients";
my $PKG = '@launchdarkly/node-server-sdk';

sub which {
    my ($name) = @_;
    return -x $name ? $name : undef if $name =~ m{/};
    for my $d (File::Spec->path) {
        return "$d/$name" if -f "$d/$name" && -x _;
    }
    return undef;
}

sub json_file {
    my ($file) = @_;
    open my $fh, '<', $file or return undef;
    local $/;
    my $v = eval { JSON::PP->new->decode(<$fh>) };
    close $fh;
    return $v;
}

sub installed_version {
    my $p = json_file("$CLIENTS/node_modules/$PKG/package.json");
    return $p ? $p->{version} : undef;
}

# runs a command in t/clients, output to $log, killed after $timeout s

sub run_bounded {
    my ($timeout, $log, @cmd) = @_;

    my $pid = fork();
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        chdir $CLIENTS or POSIX::_exit(126);
        open STDOUT, '>', $log or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        POSIX::setpgid(0, 0);
        exec(@cmd) or POSIX::_exit(127);
    }

    my $deadline = time + $timeout;
    while (time < $deadline) {
        return $? >> 8 if waitpid($pid, WNOHANG) == $pid;
        sleep 0.1;
    }
    kill 'KILL', -$pid, $pid;
    waitpid($pid, 0);
    return -1;
}

my $NODE = which($ENV{TEST_LDSEG_NODE} || 'node')
    or plan(skip_all => 'node is not installed');

my $pinned = json_file("$CLIENTS/package.json")->{dependencies}{$PKG};

if ((installed_version() // '') ne $pinned) {
    my $log = File::Spec->catfile(File::Spec->tmpdir, "ldseg-npm-ci-$$.log");
    my $npm = which($ENV{TEST_LDSEG_NPM} || 'npm');
    my $rc = $npm
        ? run_bounded(300, $log, $npm, 'ci', '--no-audit', '--no-fund',
                      '--loglevel=error')
        : 127;
    my $out = '';
    if (open my $fh, '<', $log) { local $/; $out = <$fh> // ''; close $fh }
    unlink $log;

    if ((installed_version() // '') ne $pinned) {
        plan(tests => 1);
        fail("npm ci in t/clients installs $PKG $pinned");
        diag($npm ? "npm ci: exit $rc\n$out" : 'npm is not installed');
        exit 0;
    }
}

###############################################################################

my $t = Test::Ldseg->new()->plan(21);
my $ld = $t->mock;

mkdir $t->testdir . '/segment';
my $seg = Test::LdsegMock->new(dir => $t->testdir . '/segment',
                               default => { status => 200 });
my $SEG = $seg->url;

(my $conf = <<'EOF') =~ s/%%SEGMENT%%/$SEG/g;
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_flush_interval 100ms;

    # the SDK key picks the write key and the environment
    map $http_authorization $export_key {
        default            "";
        sdk-node-test-key  wk-node;
    }

    map $http_authorization $export_env {
        default            "";
        sdk-node-test-key  production;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location / {
            ldseg_export on;
            ldseg_export_url %%SEGMENT%%;
            ldseg_export_write_key $export_key;
            ldseg_export_environment $export_env;
            ldseg_export_project default;
            ldseg_pass @launchdarkly;
        }

        location @launchdarkly {
            proxy_pass %%MOCK%%;
        }

        location = /status {
            ldseg_status;
        }
    }
}
EOF

$t->write_file_expand('nginx.conf', $conf);
$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $dir = $t->testdir;

my $rc = run_bounded(60, "$dir/node.out", $NODE, "$CLIENTS/ld-node-sdk.js",
    $J->encode({ eventsUri => 'http://127.0.0.1:' . $t->port(8080),
                 sdkKey => 'sdk-node-test-key', user => 'node-user-1' }));

my $out = $t->read_file('node.out');
my ($line) = $out =~ /^(\{.*\})\s*$/m;
my $res = $line ? Test::Ldseg::json($line) : {};

is($rc, 0, 'the SDK script ran') or diag($out);
is_deeply($res->{errors}, [], 'the SDK logged no error or warning');
is($res->{tracked}, 'treatment', 'flag evaluated from TestData');

# what the SDK posted, as LaunchDarkly got it

my @bulk = grep { $_->{method} eq 'POST' && $_->{path} eq '/bulk' }
           $ld->requests;
my @diag = grep { $_->{method} eq 'POST' && $_->{path} eq '/diagnostic' }
           $ld->requests;

ok(@bulk >= 1, 'the SDK posted /bulk through nginx to LaunchDarkly');
ok(@diag >= 1, 'and /diagnostic');
is(scalar(grep { ($_->{headers}{authorization} // '') ne 'sdk-node-test-key' }
          @bulk, @diag), 0, 'with its SDK key');
is(scalar(grep { ($_->{headers}{'x-launchdarkly-payload-id'} // '') !~
                 /^[0-9a-f-]{36}$/ } @bulk), 0, 'with a payload ID');
like($bulk[0]{headers}{'user-agent'} // '', qr/NodeJSClient/,
     'with the SDK\'s user agent');

my (@sdk, @want);

for my $p (@bulk) {
    my $events = $J->decode($p->{body});
    my $pid = $p->{headers}{'x-launchdarkly-payload-id'};
    for my $i (0 .. $#$events) {
        my $e = $events->[$i];
        push @sdk, $e;
        next unless $e->{kind} eq 'feature' || $e->{kind} eq 'custom';
        push @want, { %$e, _id => "$pid-$i" };
    }
}

my %kinds;
$kinds{ $_->{kind} }++ for @sdk;
is($kinds{feature}, 2, 'two feature events (trackEvents)');
is($kinds{custom}, 2, 'two custom events');
ok($kinds{identify} && $kinds{summary}, 'identify and summary events');

# what Segment got

Test::Ldseg::wait_for(sub {
    my @m = map { @{ $J->decode($_->{body})->{batch} } }
            grep { $_->{method} eq 'POST' } $seg->requests;
    @m >= @want }, 10);

my @posts = grep { $_->{method} eq 'POST' } $seg->requests;
my %got = map { $_->{messageId} => $_ }
          map { @{ $J->decode($_->{body})->{batch} } } @posts;

is(scalar keys %got, 4, 'four messages at Segment');
is(scalar(grep { ($_->{headers}{authorization} // '')
                 ne Test::Ldseg::basic_auth('wk-node') } @posts), 0,
   'Basic auth with the write key the SDK key maps to');

sub iso {
    my ($ms) = @_;
    my @t = gmtime(int($ms / 1000));
    return sprintf('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', $t[5] + 1900,
                   $t[4] + 1, @t[3, 2, 1, 0], $ms % 1000);
}

my $bad = 0;

for my $e (@want) {
    my $m = $got{ $e->{_id} };
    my $ctx = $e->{context} || {};
    my %keys = ($ctx->{kind} // '') eq 'multi'
        ? map { $_ => $ctx->{$_}{key} } grep { $_ ne 'kind' } keys %$ctx
        : (($ctx->{kind} // 'user') => $ctx->{key});

    my $x = {
        type => 'track', event => $e->{kind}, userId => $keys{user},
        properties => {
            environment => 'production', project => 'default',
            key => $e->{key}, contextKeys => \%keys,
            $e->{kind} eq 'feature' ? (
                value => $e->{value}, variation => $e->{variation},
                flagVersion => $e->{version},
                exists $e->{default} ? (default => $e->{default}) : (),
                $e->{reason} ? (reasonKind => $e->{reason}{kind}) : (),
                exists(($e->{reason} || {})->{inExperiment})
                    ? (inExperiment => $e->{reason}{inExperiment}) : (),
            ) : (
                exists $e->{metricValue}
                    ? (metricValue => $e->{metricValue}) : (),
                exists $e->{data} ? (data => $e->{data}) : (),
            ),
        },
        timestamp => iso($e->{creationDate}),
        messageId => $e->{_id},
        context => { library => { name => 'ldseg', version => '0.1.0' } },
    };

    next if $m && $J->encode($m) eq $J->encode($x);
    $bad++;
    diag('SDK event ' . $J->encode($e) . "\nwant " . $J->encode($x)
         . "\ngot  " . $J->encode($m // {}));
}

is($bad, 0, 'every message built from its SDK event, field by field');

my ($purchase) = grep { $_->{properties}{key} eq 'purchase' } values %got;
is($purchase->{properties}{metricValue}, 49.5, 'track() metric value');
is_deeply($purchase->{properties}{data}, { sku => 'a-1', qty => 2 },
          'track() data');
my ($signup) = grep { $_->{properties}{key} eq 'signup' } values %got;
ok($signup && !exists $signup->{properties}{metricValue},
   'track() without a metric value: none');
my ($detail) = grep { $_->{event} eq 'feature'
                      && $_->{properties}{contextKeys}{org} } values %got;
is_deeply($detail && $detail->{properties}{contextKeys},
          { user => 'node-user-1', org => 'org-7' },
          'multi context: every kind in contextKeys');
is($detail && $detail->{properties}{reasonKind}, 'FALLTHROUGH',
   'variationDetail: the reason kind');

my $st = $t->status;
is($st->{export}{exported}, 4, 'status: exported');
is($st->{export}{skipped}, scalar(@sdk) - 4,
   'status: identify, index and summary skipped');

###############################################################################
