#!/usr/bin/perl

# Browsers: Segment's analytics.js (@segment/analytics-next, its UMD bundle
# from npm) in headless Chromium (Debian's chromium, driven by
# playwright-core), on a page served from another origin, with its API host
# pointed at ldseg ("ldseg_cors" allows the page's origin):
#
# - per-event mode (/v1/t, /v1/i, /v1/p, /v1/g, /v1/a, text/plain bodies
#   with the write key, "Authorization: Basic", so every request is
#   preflighted) and batching mode (/v1/b): every call reaches ldseg and is
#   answered 200, readable by the page; "ldseg_pass" hands each request on
#   to a recording location (the mock), so the test knows the exact bodies
#   the browser sent; Segment's own destination code (t/oracle/) turns
#   those messages into the LaunchDarkly events it would send, and the mock
#   LaunchDarkly must receive exactly those (parsed JSON, key order
#   ignored, creationDate exact), nothing more;
# - error answers (400, 401, 404) are readable by the page: status, JSON
#   body, Retry-After exposed;
# - a page on an origin "ldseg_cors" does not allow: its preflight is
#   refused (the request is never sent) and the answer to a request that
#   needs no preflight is not readable.
#
# Nothing leaves the machine: the page, analytics.js and its settings come
# from nginx (settings inline, no CDN); Chromium resolves no name but
# 127.0.0.1, and every host the browser asked for is checked.
#
# Needs node and npm (Debian's nodejs; .ci/deps.sh installs it), chromium
# (.ci/deps.sh installs Debian's) and the npm registry: t/browser/
# node_modules is installed with "npm ci" when it is missing or holds other
# versions, the oracle with t/oracle/setup.sh.  Skipped without node or
# chromium, except under CI=true, where that fails.  TEST_LDSEG_NODE,
# TEST_LDSEG_NPM and TEST_LDSEG_CHROMIUM name other binaries.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Browser qw(browser_setup run_bounded slurp broken);

use Encode qw(encode_utf8);
use File::Spec;
use JSON::PP;
use Time::HiRes qw(time sleep);

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

###############################################################################
# node, npm, chromium, the packages and the oracle

my $b = browser_setup();
my ($BROWSER, $NODE, $CHROMIUM, $pins) = @$b{qw(dir node chromium pins)};
my $ORACLE = "$FindBin::Bin/oracle";
my $tmp = File::Spec->tmpdir;

# the oracle: Segment's destination code

if (!-f "$ORACLE/node_modules/.oracle-ready") {
    my $log = "$tmp/ldseg-oracle-setup-$$.log";
    my $rc = run_bounded(out => $log, timeout => 300,
                         cmd => [ 'bash', "$ORACLE/setup.sh" ]);
    my $out = slurp($log);
    unlink $log;
    broken('t/oracle/setup.sh installs the reference oracle',
           ($rc < 0 ? 'timed out after 300 s' : "exit $rc") . "\n$out")
        if $rc != 0;
}

###############################################################################

my $t = Test::Ldseg->new()->plan(41);
my $mock = $t->mock;

(my $conf = <<'EOF') =~ s/%%BROWSER%%/$BROWSER/g;
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    types {
        text/html               html;
        application/javascript  js;
    }

    ldseg_zone ldseg 4m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;

    map $ldseg_write_key $ld_id {
        default           "";
        wk-browser-event  BROWSER-EVENT;
        wk-browser-batch  BROWSER-BATCH;
        wk-browser-fetch  BROWSER-FETCH;
    }

    # ldseg: the API host the page calls
    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id $ld_id;
            ldseg_cors http://127.0.0.1:%%PORT_8082%%;
            ldseg_pass @record;

            # the reference is the destination: Segment's API corrects
            # clock skew (analytics.js sends a sentAt) before it
            ldseg_clock_skew off;
        }

        # every accepted request, untouched, to the mock: the bodies the
        # browser sent
        location @record {
            proxy_pass http://127.0.0.1:%%MOCK_PORT%%;
        }

        location /status {
            ldseg_status;
        }
    }

    # the page, on an origin ldseg_cors allows (8082) and on one it does
    # not (8083)
    server {
        listen 127.0.0.1:%%PORT_8082%%;
        listen 127.0.0.1:%%PORT_8083%%;

        root %%BROWSER%%/www;

        location /analytics-next/bundles/ {
            alias %%BROWSER%%/node_modules/@segment/analytics-next/dist/umd/;
        }
    }
}
EOF

$t->write_file_expand('nginx.conf', $conf);
$t->run;

my $api = 'http://127.0.0.1:' . $t->port(8080);
my $page = 'http://127.0.0.1:' . $t->port(8082) . '/index.html';
my $other = 'http://127.0.0.1:' . $t->port(8083) . '/index.html';
my $apihost = '127.0.0.1:' . $t->port(8080) . '/v1';

my $prefix = sprintf 'b%x%04x-', $$, int(rand 65536);

###############################################################################
# the browser

my $auth_fetch = Test::Ldseg::basic_auth('wk-browser-fetch');
my $auth_unknown = Test::Ldseg::basic_auth('wk-unknown');

sub msg {
    my (%m) = @_;
    return JSON::PP->new->canonical->encode({ type => 'track',
                                              userId => 'fetch-user', %m });
}

my $big = msg(writeKey => 'wk-browser-fetch', event => "${prefix}big",
              properties => { pad => 'x' x 40000 });

my @errors = (
    { name => 'invalid_json', path => '/v1/t', body => 'not json',
      headers => { 'Content-Type' => 'text/plain',
                   Authorization => $auth_fetch } },
    { name => 'unknown_write_key', path => '/v1/t',
      body => msg(writeKey => 'wk-unknown', event => "${prefix}unknown"),
      headers => { 'Content-Type' => 'text/plain',
                   Authorization => $auth_unknown } },
    { name => 'too_large', path => '/v1/t', body => $big,
      headers => { 'Content-Type' => 'text/plain',
                   Authorization => $auth_fetch } },
    { name => 'unknown_endpoint', path => '/v1/nope',
      body => msg(writeKey => 'wk-browser-fetch', event => "${prefix}nope"),
      headers => { 'Content-Type' => 'text/plain' } },
);

my @refused = (
    # needs a preflight (Authorization): never sent
    { name => 'preflighted', path => '/v1/t',
      body => msg(writeKey => 'wk-browser-fetch',
                  event => "${prefix}refused"),
      headers => { 'Content-Type' => 'text/plain',
                   Authorization => $auth_fetch } },
    # a simple request: sent, answered (401), unreadable
    { name => 'simple', path => '/v1/t',
      body => msg(writeKey => 'wk-unknown', event => "${prefix}simple"),
      headers => { 'Content-Type' => 'text/plain' } },
);

my %cfg = (
    chromium => $CHROMIUM,
    timeout => 60000,
    scenarios => [
        { name => 'event', page => $page, run => 'analytics',
          cfg => { writeKey => 'wk-browser-event', apiHost => $apihost,
                   apiOrigin => $api, prefix => "${prefix}e-" } },
        { name => 'batch', page => $page, run => 'analytics',
          cfg => { writeKey => 'wk-browser-batch', apiHost => $apihost,
                   apiOrigin => $api, prefix => "${prefix}b-",
                   batching => JSON::PP::true, batchSize => 3,
                   batchTimeout => 300 } },
        { name => 'errors', page => $page, run => 'fetch',
          cfg => { apiOrigin => $api, requests => \@errors } },
        { name => 'refused', page => $other, run => 'fetch',
          cfg => { apiOrigin => $api, requests => \@refused } },
    ],
);

my $dir = $t->testdir;
my $t0 = time;
my $rc = run_bounded(dir => $BROWSER, out => "$dir/browser.out",
                     err => "$dir/browser.err", timeout => 150,
                     cmd => [ $NODE, "$BROWSER/browser.js",
                              JSON::PP->new->canonical->encode(\%cfg) ]);
my $secs = time - $t0;

my $out = slurp("$dir/browser.out");
my ($line) = $out =~ /^(\{.*\})\s*$/m;
my $res = $line ? Test::Ldseg::json($line) : undef;

is($rc, 0, 'browser.js finished')
    or diag("exit $rc; stdout:\n$out\nstderr:\n" . slurp("$dir/browser.err"));
$res ||= { results => {}, hosts => [], console => [] };

my $ev = $res->{results}{event} || { requests => [], calls => [],
                                     failed => [], others => [] };
my $ba = $res->{results}{batch} || { requests => [], calls => [],
                                     failed => [], others => [] };

note(sprintf 'chromium %s, playwright-core %s, analytics-next %s:'
     . ' browser.js ran %.1f s (per-event calls %d ms, batching %d ms)',
     $res->{chromium} // '?', $res->{playwright} // '?',
     $ev->{version} // '?', $secs, $ev->{elapsedMs} // -1,
     $ba->{elapsedMs} // -1);

my $ajs = $pins->{'@segment/analytics-next'};
is($ev->{version}, $ajs, "analytics.js is \@segment/analytics-next $ajs");

my %ports = map { $t->port($_) => 1 } 8080, 8082, 8083;
is(join(' ', grep { !/^127\.0\.0\.1:(\d+)$/ || !$ports{$1} }
             @{ $res->{hosts} }), '',
   'the browser asked nothing but this test\'s nginx');
is(join("\n", grep { /^(event|batch):/ } @{ $res->{console} }), '',
   'no console error or page error while analytics.js ran');

###############################################################################
# the messages the browser sent, as ldseg_pass recorded them

sub recorded {
    my ($wk) = @_;
    return grep { $_->{path} =~ m{^/v1/}
                  && $_->{body} =~ /"writeKey":"\Q$wk\E"/ } $mock->requests;
}

sub same_bodies {
    my ($sent, $got) = @_;
    my %n;
    $n{ encode_utf8($_->{body} // '') }++ for @$sent;
    $n{ $_->{body} }-- for @$got;
    return scalar grep { $n{$_} } keys %n;
}

my %type = (t => 'track', i => 'identify', a => 'alias', p => 'page',
            s => 'screen', g => 'group');

# the oracle's events for these messages, each a canon() value

sub oracle_events {
    my ($name, $client_id, @messages) = @_;

    my $in = "$dir/oracle-$name.json";
    open my $fh, '>', $in or die "$in: $!";
    binmode $fh;
    print $fh '[' . join(',', @messages) . ']';
    close $fh;

    my $rc = run_bounded(out => "$dir/oracle-$name.out",
                         err => "$dir/oracle-$name.err", in => $in,
                         timeout => 60,
                         cmd => [ $NODE, "$ORACLE/oracle.js", $client_id ]);
    my $o = Test::Ldseg::json(slurp("$dir/oracle-$name.out"));

    if ($rc != 0 || ref $o ne 'ARRAY' || @$o != @messages) {
        diag("oracle: exit $rc\n" . slurp("$dir/oracle-$name.err"));
        return ([], ['oracle failed']);
    }

    my (@events, @errors);
    for my $r (@$o) {
        push @errors, $r->{error} if defined $r->{error};
        for my $q (@{ $r->{requests} }) {
            push @events, map { Test::Ldseg::canon($_) } @{ $q->{body} };
        }
    }

    return (\@events, \@errors);
}

# multiset difference of canon() values: (missing, extra)

sub compare_events {
    my ($want, $got) = @_;
    my %n;
    $n{ Test::Ldseg::canon_text($_) }++ for @$want;
    $n{ Test::Ldseg::canon_text($_) }-- for @$got;
    return ([ grep { $n{$_} > 0 } sort keys %n ],
            [ grep { $n{$_} < 0 } sort keys %n ]);
}

# LaunchDarkly's events for the client-side ID, once there are $n of them
# (or after 15 s), a little later for any extra to show

sub ld_events {
    my ($client_id, $n) = @_;
    Test::Ldseg::wait_for(sub {
        (() = $mock->events(client_id => $client_id)) >= $n }, 15);
    sleep 0.3;
    return map { Test::Ldseg::canon($_) }
           $mock->events(client_id => $client_id);
}

###############################################################################
# per-event mode

my @er = @{ $ev->{requests} };

is(join(' | ', map { "$_->{type}: $_->{reason}" } @{ $ev->{failed} }), '',
   'per-event: analytics.js reports no failed delivery');
is(scalar @er, scalar @{ $ev->{calls} },
   'per-event: one request per call (' . scalar(@{ $ev->{calls} }) . ')');
is(join(' ', sort map { ($_->{url} =~ m{/v1/(\w+)$})[0] // $_->{url} } @er),
   'a g i p t t t t', 'per-event: /v1/a, /v1/g, /v1/i, /v1/p, 4 x /v1/t');
is(join(' ', map { "$_->{status}/$_->{type}" }
             grep { ($_->{status} // 0) != 202 || $_->{type} ne 'cors' }
             @er), '', 'per-event: every answer a readable (cors) 2xx');
is(scalar(grep { ($_->{headers}{'Content-Type'} // '') eq 'text/plain'
                 && ($_->{headers}{Authorization} // '') =~ /^Basic / } @er),
   scalar @er, 'per-event: text/plain bodies, Authorization: Basic');

my @erec = recorded('wk-browser-event');
is(scalar @erec, scalar @er, 'per-event: ldseg passed every request on');
is(same_bodies(\@er, \@erec), 0,
   'per-event: the recorded bodies are the ones the browser sent');

my (@emsgs, @etype);
for my $r (@erec) {
    my ($ep) = $r->{path} =~ m{^/v1/(\w)$};
    my $m = Test::Ldseg::json($r->{body}) || {};
    push @etype, "$r->{path}: $m->{type}" if ($m->{type} // '') ne
                                             ($type{ $ep // '' } // '?');
    push @emsgs, $r->{body};
}
is("@etype", '', 'per-event: each body\'s type is its endpoint\'s');

my ($ewant, $eerr) = oracle_events('event', 'BROWSER-EVENT', @emsgs);
is("@$eerr", '', 'per-event: the oracle refuses none of the messages');
is(scalar @$ewant, 6, 'per-event: the oracle predicts 6 events (4 custom,'
   . ' 2 alias; page and group none)');

my ($emiss, $eextra) = compare_events($ewant,
    [ ld_events('BROWSER-EVENT', scalar @$ewant) ]);
is(join("\n", @$emiss), '', 'per-event: LaunchDarkly got every predicted'
   . ' event');
is(join("\n", @$eextra), '', 'per-event: and nothing else');

###############################################################################
# batching mode

my @br = @{ $ba->{requests} };
my $nb = 0;
$nb += @{ (Test::Ldseg::json(encode_utf8($_->{body} // '')) || {})->{batch}
          || [] } for @br;

is(join(' | ', map { "$_->{type}: $_->{reason}" } @{ $ba->{failed} }), '',
   'batching: analytics.js reports no failed delivery');
is(join(' ', map { ($_->{url} =~ m{/v1/(\w+)$})[0] // $_->{url} } @br),
   join(' ', ('b') x @br), 'batching: every request to /v1/b');
cmp_ok(scalar @br, '>=', 2, 'batching: ' . scalar(@br) . ' batches');
is($nb, scalar @{ $ba->{calls} }, "batching: the batches hold every call"
   . " ($nb)");
is(join(' ', map { "$_->{status}/$_->{type}" }
             grep { ($_->{status} // 0) != 202 || $_->{type} ne 'cors' }
             @br), '', 'batching: every answer a readable (cors) 2xx');

my @brec = recorded('wk-browser-batch');
is(scalar @brec, scalar @br, 'batching: ldseg passed every batch on');
is(same_bodies(\@br, \@brec), 0,
   'batching: the recorded bodies are the ones the browser sent');

my @bmsgs;
for my $r (@brec) {
    my $b = JSON::PP->new->utf8->decode($r->{body});
    push @bmsgs, map { Test::Ldseg::encode_json_exact($_) }
                 @{ $b->{batch} || [] };
}

my ($bwant, $berr) = oracle_events('batch', 'BROWSER-BATCH', @bmsgs);
is("@$berr", '', 'batching: the oracle refuses none of the messages');
is(scalar @$bwant, 6, 'batching: the oracle predicts 6 events');

my ($bmiss, $bextra) = compare_events($bwant,
    [ ld_events('BROWSER-BATCH', scalar @$bwant) ]);
is(join("\n", @$bmiss), '', 'batching: LaunchDarkly got every predicted'
   . ' event');
is(join("\n", @$bextra), '', 'batching: and nothing else');

###############################################################################
# error answers the page can read; a refused origin

my %fe = map { $_->{name} => $_ } @{ $res->{results}{errors} || [] };

sub answer {
    my ($r) = @_;
    return 'none' unless $r;
    return "error $r->{error}" if defined $r->{error};
    my $j = Test::Ldseg::json(encode_utf8($r->{body} // '')) || {};
    return join ' ', $r->{type}, $r->{status}, $j->{code} // '-';
}

is(answer($fe{invalid_json}), 'cors 400 invalid_json',
   'the page reads a 400 answer: status and JSON code');
is(answer($fe{unknown_write_key}), 'cors 401 unknown_write_key',
   'the page reads a 401 answer');
is(answer($fe{too_large}), 'cors 400 too_large',
   'the page reads the answer to a body over Segment\'s limit');
is(answer($fe{unknown_endpoint}), 'cors 404 unknown_endpoint',
   'the page reads a 404 answer');

my %fr = map { $_->{name} => $_ } @{ $res->{results}{refused} || [] };

like(answer($fr{preflighted}), qr/^error TypeError/,
     'another origin: a request that needs a preflight fails');
like(answer($fr{simple}), qr/^error TypeError/,
     'another origin: the answer to a simple request is not readable');
is(scalar(grep { $_->{body} =~ /\Q${prefix}refused\E/ } $mock->requests), 0,
   'another origin: the refused preflight kept the request from ldseg');

like(join("\n", @{ $res->{console} }),
     qr/refused:.*CORS policy/, 'Chromium says why: CORS policy');

###############################################################################
# what ldseg counted

my $s = $t->status;
is($s && $s->{skipped}, 4, 'status: 2 pages, 2 groups skipped');
is($s && $s->{translated}, 12, 'status: 12 events translated');
is($s && $s->{rejected_reasons}{invalid_json}, 1, 'status: 1 invalid_json');
is($s && $s->{rejected_reasons}{too_large}, 1, 'status: 1 too_large');

my $ld = $mock->wait_events(12, 10);
is($ld, 12, 'LaunchDarkly got 12 events in all');
is(scalar(grep { $_->{client_id} !~ /^BROWSER-(EVENT|BATCH)$/ }
            $mock->posts), 0, 'no event for another client-side ID');

note(sprintf 'per-event: %d requests; batching: %d requests for %d'
     . ' messages; %d LaunchDarkly POSTs; browser.js %.1f s',
     scalar @er, scalar @br, $nb, scalar(() = $mock->posts), $secs);

###############################################################################
