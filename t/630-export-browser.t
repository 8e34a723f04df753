#!/usr/bin/perl

# The export with LaunchDarkly's browser SDK, launchdarkly-js-client-sdk
# (its UMD bundle from npm, pinned in t/browser/package.json), in headless
# Chromium (Debian's chromium, driven by playwright-core):
#
# - the page, the SDK, its flags (GET <baseUrl>/sdk/evalx/<ID>/contexts/…)
#   and its goals (GET <baseUrl>/sdk/goals/<ID>: a pageview goal and a
#   click goal whose URL matchers match the page) are served by nginx from
#   files, on the page's origin; the SDK's eventsUrl is ldseg, another
#   origin, with "ldseg_export on" and "ldseg_pass @launchdarkly" to the
#   mock LaunchDarkly, which answers CORS as LaunchDarkly does;
# - the page evaluates flags with trackEvents (one with an experiment
#   reason), calls track() with and without data and metric value and
#   clicks the goal's element; the SDK's pageview, click, feature and custom
#   events are flushed in one post to /events/bulk/<ID>;
# - the mock LaunchDarkly gets that post (and its CORS preflight, and the
#   SDK's diagnostic post) unchanged: the body the page sent, byte for
#   byte, with its payload ID; the page reads LaunchDarkly's 202;
# - the mock Segment gets one track message per pageview, click, feature
#   and custom event, built from that very event field by field (event
#   name, userId, contextKeys, properties.url and selector, key,
#   environment, timestamp from creationDate, messageId from the payload
#   ID); the same post sent again gives the same messageIds; identify,
#   summary and click_pageview (the SDK's "a click goal's page was seen")
#   events are counted as skipped.
#
# Needs node, npm and chromium (Test::Ldseg::Browser); skipped without
# them, except under CI=true, where that fails.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Browser qw(browser_setup run_bounded slurp);
use Test::LdsegMock;

use JSON::PP;
use Time::HiRes qw(time sleep);

###############################################################################
# node, npm, chromium and t/browser/node_modules

my $b = browser_setup();
my ($BROWSER, $NODE, $CHROMIUM, $pins) = @$b{qw(dir node chromium pins)};

###############################################################################

my $t = Test::Ldseg->new()->plan(30);
my $ld = $t->mock;

mkdir $t->testdir . '/segment';
my $seg = Test::LdsegMock->new(dir => $t->testdir . '/segment',
                               default => { status => 200 });
my $SEG = $seg->url;

my $ID = 'browser-env-630';

(my $conf = <<'EOF') =~ s/%%SEGMENT%%/$SEG/g;
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    types {
        text/html               html;
        application/javascript  js;
        application/json        json;
    }

    ldseg_zone ldseg 1m;
    ldseg_flush_interval 100ms;

    # the client-side ID in the path picks the write key
    map $uri $export_key {
        default                          "";
        ~/events/bulk/browser-env-630$   wk-browser-export;
    }

    # ldseg: the SDK's eventsUrl
    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /events/ {
            ldseg_export on;
            ldseg_export_url %%SEGMENT%%;
            ldseg_export_write_key $export_key;
            ldseg_export_project default;
            ldseg_pass @launchdarkly;
        }

        # LaunchDarkly, with the CORS answers of its events service
        location @launchdarkly {
            proxy_pass %%MOCK%%;

            add_header Access-Control-Allow-Origin $http_origin always;
            add_header Access-Control-Allow-Methods "POST, OPTIONS" always;
            add_header Access-Control-Expose-Headers Date always;
            add_header Access-Control-Allow-Headers
                       "Content-Type, X-LaunchDarkly-Event-Schema" always;
            add_header Access-Control-Allow-Headers
                       "X-LaunchDarkly-Payload-ID, X-LaunchDarkly-User-Agent"
                       always;
        }

        location = /status {
            ldseg_status;
        }
    }

    # the page and the SDK; its flags and goals from files, as
    # LaunchDarkly's app would answer (the SDK's baseUrl)
    server {
        listen 127.0.0.1:%%PORT_8082%%;

        root %%BROWSER%%/www;

        location /launchdarkly-js-client-sdk/ {
            alias %%BROWSER%%/node_modules/launchdarkly-js-client-sdk/dist/;
        }

        location /sdk/evalx/browser-env-630/contexts/ {
            root %%TESTDIR%%;
            try_files /flags.json =404;
        }

        location = /sdk/goals/browser-env-630 {
            root %%TESTDIR%%;
            try_files /goals.json =404;
        }
    }
}
EOF

$conf =~ s/%%BROWSER%%/$BROWSER/g;
$t->write_file_expand('nginx.conf', $conf);

my $J = JSON::PP->new->utf8->canonical;
my $page = 'http://127.0.0.1:' . $t->port(8082) . '/ld.html';
my $api = 'http://127.0.0.1:' . $t->port(8080);

# flags as LaunchDarkly's evalx answer has them, and goals whose URL
# matchers match the page: an exact URL and a substring

$t->write_file('flags.json', $J->encode({
    'ldseg-tracked' => { value => 'treatment', variation => 1, version => 41,
                         flagVersion => 12, trackEvents => JSON::PP::true },
    'ldseg-experiment' => { value => JSON::PP::true, variation => 0,
                            version => 42, flagVersion => 7,
                            trackEvents => JSON::PP::true,
                            trackReason => JSON::PP::true,
                            reason => { kind => 'FALLTHROUGH',
                                        inExperiment => JSON::PP::true } },
    'ldseg-untracked' => { value => 3, variation => 2, version => 43,
                           flagVersion => 5 },
}));

$t->write_file('goals.json', $J->encode([
    { kind => 'pageview', key => 'ldseg-page-goal',
      urls => [ { kind => 'exact', url => $page } ] },
    { kind => 'click', key => 'ldseg-buy-goal', selector => '#buy',
      urls => [ { kind => 'substring', substring => '/ld.html' } ] },
    { kind => 'pageview', key => 'ldseg-other-page',
      urls => [ { kind => 'exact', url => "$page/elsewhere" } ] },
]));

$t->run;

###############################################################################
# the browser

my %cfg = (
    chromium => $CHROMIUM,
    timeout => 60000,
    scenarios => [
        { name => 'ld', page => $page, run => 'launchdarkly',
          cfg => {
              clientSideId => $ID,
              context => { kind => 'multi',
                           user => { key => 'browser-user-1',
                                     name => 'Ada' },
                           org => { key => 'org-630' } },
              baseUrl => 'http://127.0.0.1:' . $t->port(8082),
              eventsUrl => $api,
              flags => [ { key => 'ldseg-tracked', def => 'control' },
                         { key => 'ldseg-experiment',
                           def => JSON::PP::false },
                         { key => 'ldseg-untracked', def => 0 } ],
              track => [ { key => 'ldseg-purchase',
                           data => { sku => 'a-1', qty => 2 },
                           metricValue => 49.5 },
                         { key => 'ldseg-signup' } ],
              click => [ '#buy', '#other' ],
          } },
    ],
);

my $dir = $t->testdir;
my $t0 = time;
my $rc = run_bounded(dir => $BROWSER, out => "$dir/browser.out",
                     err => "$dir/browser.err", timeout => 120,
                     cmd => [ $NODE, "$BROWSER/browser.js",
                              $J->encode(\%cfg) ]);
my $secs = time - $t0;

my $out = slurp("$dir/browser.out");
my ($line) = $out =~ /^(\{.*\})\s*$/m;
my $res = ($line ? Test::Ldseg::json($line) : undef)
          || { results => {}, hosts => [], console => [] };
my $r = $res->{results}{ld} || { requests => [], values => {} };

is($rc, 0, 'browser.js finished')
    or diag("exit $rc; stdout:\n$out\nstderr:\n" . slurp("$dir/browser.err"));

note(sprintf 'chromium %s, launchdarkly-js-client-sdk %s: browser.js %.1f s'
     . ' (page %d ms)', $res->{chromium} // '?', $r->{version} // '?',
     $secs, $r->{elapsedMs} // -1);

my $sdk = $pins->{'launchdarkly-js-client-sdk'};
is($r->{version}, $sdk, "the SDK is launchdarkly-js-client-sdk $sdk");

my %ports = map { $t->port($_) => 1 } 8080, 8082;
is(join(' ', grep { !/^127\.0\.0\.1:(\d+)$/ || !$ports{$1} }
             @{ $res->{hosts} }), '',
   'the browser asked nothing but this test\'s nginx');
is(join("\n", @{ $res->{console} }), '', 'no console error or page error');

is($J->encode($r->{values}),
   $J->encode({ 'ldseg-tracked' => 'treatment',
                'ldseg-experiment' => JSON::PP::true,
                'ldseg-untracked' => 3 }),
   'flags evaluated from the flags file');

###############################################################################
# what the SDK posted, and what LaunchDarkly got

my @sent = grep { $_->{method} eq 'POST'
                  && $_->{url} eq "$api/events/bulk/$ID" }
           @{ $r->{requests} };
my @sdiag = grep { $_->{method} eq 'POST'
                   && $_->{url} eq "$api/events/diagnostic/$ID" }
            @{ $r->{requests} };

is(scalar @sent, 1, 'the SDK posted its events once, to'
   . ' /events/bulk/<ID> on nginx');
is(join(' ', map { $_->{status} // 'none' } @sent, @sdiag),
   join(' ', ('202') x (@sent + @sdiag)),
   'the page read LaunchDarkly\'s 202 for each post (CORS passed)');

Test::Ldseg::wait_for(sub {
    (() = grep { $_->{method} eq 'POST' } $ld->requests)
        >= @sent + @sdiag }, 10);

my @got = grep { $_->{method} eq 'POST'
                 && $_->{path} eq "/events/bulk/$ID" } $ld->requests;
my @gdiag = grep { $_->{method} eq 'POST'
                   && $_->{path} eq "/events/diagnostic/$ID" } $ld->requests;
my @pre = grep { $_->{method} eq 'OPTIONS'
                 && $_->{path} eq "/events/bulk/$ID" } $ld->requests;

is(scalar @got, scalar @sent, 'LaunchDarkly got the post');

my %byid = map { ($_->{headers}{'x-launchdarkly-payload-id'} // '') => $_ }
           @got;
my $unchanged = 0;

for my $s (@sent) {
    my $pid = $s->{headers}{'X-LaunchDarkly-Payload-ID'} // '';
    my $g = $byid{$pid} or next;
    $unchanged++ if $g->{body} eq $s->{body}
        && ($g->{headers}{'x-launchdarkly-event-schema'} // '') eq
           ($s->{headers}{'X-LaunchDarkly-Event-Schema'} // '-')
        && ($g->{headers}{'x-launchdarkly-user-agent'} // '') eq
           ($s->{headers}{'X-LaunchDarkly-User-Agent'} // '-')
        && ($g->{headers}{'content-type'} // '') eq 'application/json';
}

is($unchanged, scalar @sent, 'unchanged: the body the page sent, byte for'
   . ' byte, with its payload ID, schema and user agent headers');
like($sent[0] && $sent[0]{headers}{'X-LaunchDarkly-Payload-ID'} // '',
     qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
     'the SDK\'s payload ID');
ok(@pre >= 1, 'the CORS preflight went on to LaunchDarkly too');
ok(@sdiag >= 1 && @gdiag == @sdiag,
   'the diagnostic post went on to LaunchDarkly');

###############################################################################
# the SDK's events

my (@sdk, @want);

for my $s (@sent) {
    my $events = $J->decode($s->{body});
    my $pid = $s->{headers}{'X-LaunchDarkly-Payload-ID'};
    for my $i (0 .. $#$events) {
        my $e = $events->[$i];
        push @sdk, $e;
        next unless $e->{kind} =~ /^(feature|custom|click|pageview)$/;
        push @want, { %$e, _id => "$pid-$i" };
    }
}

my %kinds;
$kinds{ $_->{kind} }++ for @sdk;

is(join(',', map { "$_=" . ($kinds{$_} // 0) }
             qw(pageview click feature custom)),
   'pageview=1,click=1,feature=2,custom=2',
   'one pageview and one click goal event, feature events for the flags'
   . ' with trackEvents, two custom events');
is(join(',', sort grep { !/^(feature|custom|click|pageview)$/ } keys %kinds),
   'click_pageview,identify,summary',
   'and identify, summary and click_pageview events (not exported)');
note('the SDK\'s events: '
     . join(', ', map { "$_ $kinds{$_}" } sort keys %kinds));

###############################################################################
# what Segment got

Test::Ldseg::wait_for(sub {
    my @m = map { @{ $J->decode($_->{body})->{batch} } }
            grep { $_->{method} eq 'POST' } $seg->requests;
    @m >= @want }, 10);

my @posts = grep { $_->{method} eq 'POST' } $seg->requests;
my @msgs = map { @{ $J->decode($_->{body})->{batch} } } @posts;
my %msg = map { $_->{messageId} => $_ } @msgs;

is(scalar @msgs, scalar @want, scalar(@want) . ' messages at Segment');
is(scalar(grep { $_->{path} ne '/v1/batch'
                 || ($_->{headers}{authorization} // '')
                    ne Test::Ldseg::basic_auth('wk-browser-export') }
          @posts), 0, 'POST /v1/batch, Basic auth with the write key');

sub iso {
    my ($ms) = @_;
    my @t = gmtime(int($ms / 1000));
    return sprintf('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', $t[5] + 1900,
                   $t[4] + 1, @t[3, 2, 1, 0], $ms % 1000);
}

sub context_keys {
    my ($e) = @_;
    return { %{ $e->{contextKeys} } } if $e->{contextKeys};
    my $ctx = $e->{context} || {};
    return { map { $_ => $ctx->{$_}{key} } grep { $_ ne 'kind' } keys %$ctx }
        if ($ctx->{kind} // '') eq 'multi';
    return { ($ctx->{kind} // 'user') => $ctx->{key} };
}

my $bad = 0;

for my $e (@want) {
    my $m = $msg{ $e->{_id} };
    my $keys = context_keys($e);
    my $k = $e->{kind};

    my $x = {
        type => 'track', event => $k, userId => $keys->{user},
        properties => {
            environment => $ID, project => 'default',
            key => $e->{key}, contextKeys => $keys,
            $k eq 'feature' ? (
                value => $e->{value}, variation => $e->{variation},
                flagVersion => $e->{version},
                exists $e->{default} ? (default => $e->{default}) : (),
                $e->{reason} ? (reasonKind => $e->{reason}{kind}) : (),
                exists(($e->{reason} || {})->{inExperiment})
                    ? (inExperiment => $e->{reason}{inExperiment}) : (),
            ) : $k eq 'custom' ? (
                exists $e->{metricValue}
                    ? (metricValue => $e->{metricValue}) : (),
                exists $e->{data} ? (data => $e->{data}) : (),
            ) : $k eq 'click' ? (
                url => $e->{url}, selector => $e->{selector},
            ) : (
                url => $e->{url},
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

# the schema's fields, spelled out for each kind

my %by;
push @{ $by{ $_->{event} } }, $_ for @msgs;

my ($click) = @{ $by{click} || [] };
is(join(' ', map { $_ // 'none' } $click->{userId},
        @{ $click->{properties} || {} }{qw(key url selector)}),
   "browser-user-1 ldseg-buy-goal $page #buy",
   'click: userId, the goal key, the page URL and the selector');
is($J->encode($click->{properties}{contextKeys} // {}),
   $J->encode({ org => 'org-630', user => 'browser-user-1' }),
   'click: contextKeys of every kind (from the event\'s contextKeys)');

my ($pv) = @{ $by{pageview} || [] };
is(join(' ', map { $_ // 'none' } $pv->{userId},
        @{ $pv->{properties} || {} }{qw(key url environment)}),
   "browser-user-1 ldseg-page-goal $page $ID",
   'pageview: userId, goal key, page URL, environment from the path');

my ($exp) = grep { $_->{properties}{key} eq 'ldseg-experiment' }
            @{ $by{feature} || [] };
is(join(' ', map { JSON::PP->new->allow_nonref->encode($_) }
             @{ $exp->{properties} || {} }{qw(value variation flagVersion
                                              reasonKind inExperiment)}),
   'true 0 7 "FALLTHROUGH" true',
   'feature: value, variation, flagVersion, reason kind, inExperiment');
is($J->encode($exp->{properties}{contextKeys} // {}),
   $J->encode({ org => 'org-630', user => 'browser-user-1' }),
   'feature: contextKeys from the event\'s multi context');

my ($buy) = grep { $_->{properties}{key} eq 'ldseg-purchase' }
            @{ $by{custom} || [] };
is($J->encode([ @{ $buy->{properties} || {} }{qw(metricValue data)} ]),
   '[49.5,{"qty":2,"sku":"a-1"}]', 'custom: metric value and data');

my ($e0) = grep { $_->{kind} eq 'click' } @sdk;
is($click->{timestamp}, $e0 ? iso($e0->{creationDate}) : 'none',
   'timestamp: the event\'s creationDate, ISO 8601 with milliseconds');

my $pid0 = $sent[0] ? $sent[0]{headers}{'X-LaunchDarkly-Payload-ID'} : '-';
is(scalar(grep { $_->{messageId} =~ /^\Q$pid0\E-\d+$/ } @msgs), scalar @msgs,
   'messageId: the SDK\'s payload ID and the event\'s index');

###############################################################################
# the same post again (an SDK retry): the same messageIds

my $n0 = scalar @msgs;
my ($code) = $t->http_post("/events/bulk/$ID", $sent[0]{body},
    'X-LaunchDarkly-Event-Schema' => '4',
    'X-LaunchDarkly-Payload-ID' =>
        $sent[0]{headers}{'X-LaunchDarkly-Payload-ID'});
is($code, 202, 'the post sent again: LaunchDarkly\'s answer');

Test::Ldseg::wait_for(sub {
    (() = map { @{ $J->decode($_->{body})->{batch} } }
          grep { $_->{method} eq 'POST' } $seg->requests) >= 2 * $n0 }, 10);

my @again = map { @{ $J->decode($_->{body})->{batch} } }
            grep { $_->{method} eq 'POST' } $seg->requests;
splice @again, 0, $n0;

is(join(' ', sort map { $_->{messageId} } @again),
   join(' ', sort map { $_->{messageId} } @msgs),
   'Segment got the same messageIds again: it de-duplicates them');

###############################################################################
# what ldseg counted

my $st = $t->status;
is($st->{export}{exported}, 2 * $n0, 'status: exported');
is($st->{export}{skipped}, 2 * (@sdk - $n0),
   'status: identify, summary and click_pageview events skipped');
is($st->{export}{rejected}, 0, 'status: nothing rejected');

###############################################################################
