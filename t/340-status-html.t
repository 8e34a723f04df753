#!/usr/bin/perl

# The status page as a person sees it: "?format=html", or what a browser
# asks for (Accept: text/html), opened in headless Chromium (Debian's
# chromium, driven by playwright-core as t/510-browser.t does): one
# self-contained page (the browser fetches nothing else, no script runs),
# which refreshes itself, with the totals, the per-destination table and
# the last errors showing the numbers of the JSON status, a chart of
# received / delivered / rejected per second whose sums are those
# counters, and the recent events.  A screenshot goes to
# build/status-page.png (the README shows it).
#
# Needs node, npm and chromium (.ci/deps.sh installs them) and the npm
# registry for t/browser/node_modules; skipped without them, except under
# CI=true, where that fails.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Browser qw(browser_setup run_bounded slurp);

use File::Path qw(make_path);
use File::Spec;
use JSON::PP;
use Time::HiRes qw(time sleep);

###############################################################################
# node, npm, chromium and t/browser/node_modules (Test::Ldseg::Browser)

my $b = browser_setup();
my ($BROWSER, $NODE, $CHROMIUM) = @$b{qw(dir node chromium)};

###############################################################################

my $t = Test::Ldseg->new()->plan(21);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_recent 5;
    ldseg_alert delivery_rate=0.5 window=1m;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /ok/ {
            ldseg on;
            ldseg_client_side_id OK-ID;
        }

        location /down/ {
            ldseg on;
            ldseg_client_side_id DOWN-ID;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

# DOWN-ID: 503 with a long Retry-After, so that nothing changes while the
# page and the JSON are compared

$mock->script(default => { status => 202 }, steps => [
    { status => 503, retry_after => 600, path => 'DOWN-ID', times => 1000 },
]);

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2024-02-29T12:00:00Z';

sub track {
    my ($where, $event) = @_;
    return ($t->http_post("/$where/v1/track",
        $J->encode({ userId => 'u', event => $event, timestamp => $TS })))[0];
}

track('ok', "OK-$_") for 1 .. 6;
track('down', "DOWN-$_") for 1 .. 2;
$t->http_post('/ok/v1/track', 'not json');
$t->http_post('/ok/v1/batch', $J->encode({ batch => [
    { type => 'track', userId => 'u', event => 'OK-7', timestamp => $TS },
    { type => 'track', userId => 'u' },
] }));

is($mock->wait_events(7, 10), 7, 'OK-ID events delivered');

# settled: the counters stop changing, and the history samples them

my $last = '';
ok(Test::Ldseg::wait_for(sub {
       my $s = $t->status or return 0;
       my ($d) = grep { $_->{client_side_id} eq 'DOWN-ID' }
                 @{ $s->{destinations} };
       my $now = join ',', map { $s->{$_} } qw(received delivered failed);
       my $same = $now eq $last;
       $last = $now;
       $same && $d && ($d->{paused} // '') eq 'retry_after'
       && $s->{posts}{in_flight} == 0 }, 10), 'counters settled');
sleep 2.5;

my $json = $t->status;

my ($code, $h, $html) = $t->http_get('/status?format=html');
is($code, 200, '?format=html: 200');
like($h->{'content-type'} // '', qr{^text/html}, '?format=html: text/html');
unlike($html,
       qr/<script|rel="stylesheet"|\@import|url\(|src=|href="(https?:)?\/\//i,
       'no script, stylesheet, font or image to fetch');
like(($t->http_get('/status'))[1]{'content-type'} // '',
     qr{^application/json}, 'without Accept: still JSON');

# the browser

my $dir = $t->testdir;
my $shot = "$FindBin::Bin/../build/status-page.png";
make_path("$FindBin::Bin/../build");
unlink $shot;

my %cfg = (chromium => $CHROMIUM, timeout => 30000,
           url => 'http://127.0.0.1:' . $t->port(8080) . '/status',
           screenshot => $shot);
my $rc = run_bounded(dir => $BROWSER, out => "$dir/browser.out",
                     err => "$dir/browser.err", timeout => 90,
                     cmd => [ $NODE, "$BROWSER/status.js",
                              JSON::PP->new->canonical->encode(\%cfg) ]);
my $out = slurp("$dir/browser.out");
my ($line) = $out =~ /^(\{.*\})\s*$/m;
my $res = ($line ? Test::Ldseg::json($line) : undef) || {};

ok($rc == 0 && !$res->{error}, 'status.js opened the page')
    or diag("exit $rc; stdout:\n$out\nstderr:\n" . slurp("$dir/browser.err"));
note("chromium " . ($res->{chromium} // '?') . ", "
     . ($res->{elapsedMs} // '?') . " ms");

is(join(' ', grep { $_ ne '127.0.0.1:' . $t->port(8080) }
             @{ $res->{hosts} || [] }), '',
   'the browser asked nothing but the status page');
is(join("\n", @{ $res->{console} || [] }), '', 'no console error');
is($res->{refresh}, '5', 'the page refreshes itself every 5 s');

my @C = qw(requests received accepted rejected skipped translated queued
           delivered failed dropped dead_lettered);
my $tot = $res->{totals} || {};
is(join(',', map { "$_=" . ($tot->{$_} // 'none') } @C),
   join(',', map { "$_=$json->{$_}" } @C), 'totals shown = JSON');
is(join(',', map { "$_=" . ($tot->{"queue.$_"} // 'none') }
                 qw(events destinations)),
   join(',', map { "$_=$json->{queue}{$_}" } qw(events destinations)),
   'queue shown = JSON');

my @D = qw(received accepted rejected queued delivered failed dead_lettered
           posts posts_failed retries);
my %jd = map { $_->{client_side_id} => $_ } @{ $json->{destinations} };
my $pd = $res->{destinations} || {};
is(join(',', sort keys %$pd), 'DOWN-ID,OK-ID', 'one row per destination');
for my $id (qw(OK-ID DOWN-ID)) {
    is(join(',', map { "$_=" . ($pd->{$id}{$_} // 'none') } @D,
                 'queue.events', 'last_status'),
       join(',', map { "$_=" . ($jd{$id}{$_} // 'none') } @D)
       . ",queue.events=$jd{$id}{queue}{events}"
       . ",last_status=$jd{$id}{last_status}",
       "$id: row shown = JSON");
}

is(join(',', map { "$_=" . ($res->{kinds}{$_} // 'none') } sort keys %jd),
   join(',', map { "$_=$jd{$_}{kind} $jd{$_}{kind}" } sort keys %jd),
   'each row shows its kind, as in the JSON');

is($res->{polylines}, 3, 'chart: received, delivered and rejected lines');
is(join(',', map { "$_=" . ($res->{chart}{$_} // 'none') }
                 qw(received delivered rejected)),
   join(',', map { "$_=$json->{$_}" } qw(received delivered rejected)),
   'chart: the sums over 15 minutes are the counters');

ok((grep { /DOWN-ID/ && /503/ } @{ $res->{errors} || [] }),
   'last errors: DOWN-ID answered 503');
is($res->{recent}, 5, 'recent events: five rows');

ok(-s $shot && -s $shot > 10000, 'screenshot saved in build/status-page.png')
    or diag("no screenshot at $shot");

###############################################################################
