#!/usr/bin/perl

# ldseg_export: LaunchDarkly SDK event posts through nginx.  The SDK's own
# request goes on untouched to LaunchDarkly (a mock behind ldseg_pass and
# proxy_pass) and the SDK gets LaunchDarkly's answer; the events are
# exported to Segment (a second mock recording /v1/batch) as the Data Export
# schema says: the exactness cases of the core (t/unit/export_cases.json)
# arrive field by field, for every kind of post (server-side /bulk,
# client-side /events/bulk/<ID>, mobile); diagnostic posts are never
# exported; a post sent again with its payload ID gives the same messageIds;
# a full queue drops exports (counted, logged) but never the SDK's request;
# status counts per write key, showing its first characters only.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::LdsegMock;

use JSON::PP;
use MIME::Base64;

###############################################################################

my $t = Test::Ldseg->new()->plan(69);
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
    ldseg_retry_max_delay 1s;
    ldseg_queue_limit 200k;

    # the SDK key picks the write key
    map $http_authorization $export_key {
        default        wk-client;
        sdk-key-one    wk-one;
        sdk-key-none   "";
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        ldseg_export_url %%SEGMENT%%;
        ldseg_export_write_key $export_key;

        location / {
            ldseg_export on;
            ldseg_pass @launchdarkly;
        }

        # the exactness cases: environment and payload ID as the case says

        location /cases/p/ {
            ldseg_export on;
            ldseg_export_write_key wk-cases;
            ldseg_export_environment $http_x_env;
            ldseg_export_project default;
            ldseg_pass @launchdarkly;
        }

        location /cases/np/ {
            ldseg_export on;
            ldseg_export_write_key wk-cases;
            ldseg_export_environment $http_x_env;
            ldseg_pass @launchdarkly;
        }

        location /labels/ {
            ldseg_export on;
            ldseg_export_write_key wk-labels;
            ldseg_export_label feature "Feature Evaluated";
            ldseg_export_label custom "LD custom";
            ldseg_export_environment prod;
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

# Segment messages received so far, in order, with the request of each

sub seg_batches {
    return grep { $_->{method} eq 'POST' && $_->{path} eq '/v1/batch' }
           $seg->requests;
}

sub seg_messages {
    return map { my $b = eval { $J->decode($_->{body}) };
                 ref $b eq 'HASH' ? @{ $b->{batch} || [] } : () }
           seg_batches();
}

sub wait_messages {
    my ($n) = @_;
    Test::Ldseg::wait_for(sub { seg_messages() >= $n }, 10);
    return seg_messages();
}

sub ld_posts {
    return grep { $_->{method} eq 'POST' } $ld->requests;
}

sub post {
    my ($path, $body, %h) = @_;
    return $t->http_post($path, $body, %h);
}

###############################################################################
# a server-side SDK post: passed on untouched, exported as the schema says

my $PID = '5a1b2c3d-0000-4000-8000-0000000000aa';

my $server = '[{"kind":"index","creationDate":1700000000000,'
    . '"context":{"kind":"user","key":"u-1","name":"Ann"}},'
    . '{"kind":"feature","creationDate":1700000000123,"key":"checkout",'
    . '"version":7,"context":{"kind":"user","key":"u-1"},"variation":1,'
    . '"value":true,"default":false,"reason":{"kind":"FALLTHROUGH",'
    . '"inExperiment":true}},'
    . '{"kind":"custom","creationDate":1700000000200,"key":"purchase",'
    . '"context":{"kind":"multi","user":{"key":"u-1"},"org":{"key":"o-9"}},'
    . '"metricValue":12.5,"data":{"sku":"a"}},'
    . '{"kind":"custom","creationDate":1700000000300,"key":"signup",'
    . '"contextKeys":{"device":"d-7"}},'
    . '{"kind":"identify","creationDate":1,"context":{"kind":"user","key":"u"}},'
    . '{"kind":"summary","startDate":1,"endDate":2,"features":{}}]';

my ($code, $h, $b) = post('/bulk', $server,
    'Authorization' => 'sdk-key-one',
    'User-Agent' => 'NodeJSClient/9.0.0',
    'X-LaunchDarkly-Event-Schema' => '4',
    'X-LaunchDarkly-Payload-ID' => $PID);

is($code, 202, 'SDK gets LaunchDarkly\'s status');

my @l = ld_posts();
is(scalar @l, 1, 'LaunchDarkly got the post');
is($l[0]{path}, '/bulk', 'path');
is($l[0]{body}, $server, 'body byte for byte');
is($l[0]{headers}{authorization}, 'sdk-key-one', 'SDK key');
is($l[0]{headers}{'x-launchdarkly-payload-id'}, $PID, 'payload ID');
is($l[0]{headers}{'x-launchdarkly-event-schema'}, '4', 'schema header');
is($l[0]{headers}{'user-agent'}, 'NodeJSClient/9.0.0', 'user agent');
is($l[0]{headers}{'content-type'}, 'application/json', 'content type');

my @m = wait_messages(3);
is(scalar @m, 3, 'three events exported');

my ($req) = seg_batches();
is($req->{headers}{authorization}, Test::Ldseg::basic_auth('wk-one'),
   'Basic auth with the write key the SDK key maps to');
is($req->{headers}{'content-type'}, 'application/json',
   'Segment content type');
unlike($req->{headers}{'x-launchdarkly-payload-id'} // '', qr/./,
       'no LaunchDarkly headers to Segment');

is_deeply($m[0], {
    type => 'track', event => 'feature', userId => 'u-1',
    properties => { environment => '', key => 'checkout',
                    contextKeys => { user => 'u-1' }, value => JSON::PP::true,
                    flagVersion => 7, variation => 1,
                    reasonKind => 'FALLTHROUGH', inExperiment => JSON::PP::true,
                    default => JSON::PP::false },
    timestamp => '2023-11-14T22:13:20.123Z',
    messageId => "$PID-1",
    context => { library => { name => 'ldseg', version => '0.1.0' } },
}, 'feature event, field by field');

is_deeply($m[1], {
    type => 'track', event => 'custom', userId => 'u-1',
    properties => { environment => '', key => 'purchase',
                    contextKeys => { user => 'u-1', org => 'o-9' },
                    metricValue => 12.5, data => { sku => 'a' } },
    timestamp => '2023-11-14T22:13:20.200Z',
    messageId => "$PID-2",
    context => { library => { name => 'ldseg', version => '0.1.0' } },
}, 'custom event of a multi context, field by field');

is($m[2]{anonymousId}, 'd-7', 'no user kind: anonymousId');
ok(!exists $m[2]{userId}, 'no user kind: no userId');

# the same post again (an SDK retry): the same messageIds

post('/bulk', $server, 'Authorization' => 'sdk-key-one',
     'X-LaunchDarkly-Payload-ID' => $PID);
@m = wait_messages(6);
is_deeply([ map { $_->{messageId} } @m[3 .. 5] ],
          [ map { $_->{messageId} } @m[0 .. 2] ],
          'a retried SDK post gives the same messageIds');

# without a payload ID: messageIds from the body, stable too

post('/bulk', $server, 'Authorization' => 'sdk-key-one');
post('/bulk', $server, 'Authorization' => 'sdk-key-one');
@m = wait_messages(12);
like($m[6]{messageId}, qr/^[0-9a-f]{16}-1$/, 'messageId from the body hash');
is_deeply([ map { $_->{messageId} } @m[9 .. 11] ],
          [ map { $_->{messageId} } @m[6 .. 8] ],
          'the same body without a payload ID: the same messageIds');

###############################################################################
# client-side and mobile posts; the environment from the path

my $client = '[{"kind":"feature","creationDate":1700000000000,"key":"f",'
    . '"contextKeys":{"user":"u-2"},"value":"x","variation":0,"version":3},'
    . '{"kind":"click","creationDate":1700000000001,"key":"buy-click",'
    . '"contextKeys":{"user":"u-2"},"url":"https://ex.com/p",'
    . '"selector":"button.buy"},'
    . '{"kind":"pageview","creationDate":1700000000002,"key":"home",'
    . '"contextKeys":{"user":"u-2"},"url":"https://ex.com/"}]';

($code) = post('/events/bulk/5f0123456789abcdef012345', $client);
is($code, 202, 'client-side post passed');
@m = wait_messages(15);
is($m[12]{properties}{environment}, '5f0123456789abcdef012345',
   'environment: the client-side ID of the path');
is_deeply([ map { $_->{event} } @m[12 .. 14] ],
          [ 'feature', 'click', 'pageview' ], 'feature, click, pageview');
is_deeply($m[13]{properties}, { environment => '5f0123456789abcdef012345',
    key => 'buy-click', contextKeys => { user => 'u-2' },
    url => 'https://ex.com/p', selector => 'button.buy' }, 'click goal');
is($m[14]{properties}{url}, 'https://ex.com/', 'pageview url');
@l = ld_posts();
is($l[-1]{path}, '/events/bulk/5f0123456789abcdef012345',
   'client-side post reached LaunchDarkly');
is($l[-1]{body}, $client, 'client-side body untouched');

my $mobile = '[{"kind":"custom","creationDate":1700000000000,'
    . '"key":"tap","context":{"kind":"user","key":"m-1"}}]';

for my $path ('/mobile', '/mobile/events', '/mobile/events/bulk') {
    my $before = () = seg_messages();
    ($code) = post($path, $mobile, 'Authorization' => 'mob-key');
    is($code, 202, "$path passed");
    @m = wait_messages($before + 1);
    is($m[$before]{properties}{key}, 'tap', "$path exported");
}

is(Test::Ldseg::basic_auth('wk-client'),
   (seg_batches())[-1]{headers}{authorization}, 'default write key');

###############################################################################
# diagnostic posts and other requests: passed, never exported

my $n = () = seg_messages();
my $st = $t->status;
my $requests = $st->{export}{requests};

($code) = post('/events/diagnostic/5f0123456789abcdef012345',
               '{"kind":"diagnostic","id":{}}');
is($code, 202, 'client diagnostic passed');
($code) = post('/diagnostic', '{"kind":"diagnostic-init","id":{}}',
               'Authorization' => 'sdk-key-one');
is($code, 202, 'server diagnostic passed');
($code) = post('/mobile/events/diagnostic', '{"kind":"diagnostic"}');
is($code, 202, 'mobile diagnostic passed');

# a bad body and a missing write key: passed, not exported

($code) = post('/bulk', '[{"kind":', 'Authorization' => 'sdk-key-one');
is($code, 202, 'invalid JSON passed on');
($code) = post('/bulk', $mobile, 'Authorization' => 'sdk-key-none');
is($code, 202, 'no write key: passed on');

@l = ld_posts();
is($l[-5]{path}, '/events/diagnostic/5f0123456789abcdef012345',
   'diagnostic reached LaunchDarkly');
is($l[-5]{body}, '{"kind":"diagnostic","id":{}}', 'diagnostic untouched');
is($l[-2]{body}, '[{"kind":', 'invalid body untouched');

# the next export shows that nothing came in between

post('/labels/bulk', $mobile);
@m = wait_messages($n + 1);
is(scalar @m, $n + 1, 'diagnostic posts not exported');
is($m[-1]{event}, 'LD custom', 'ldseg_export_label');
is($m[-1]{properties}{environment}, 'prod', 'ldseg_export_environment');

$st = $t->status;
is($st->{export}{requests}, $requests + 3,
   'only the event posts were read');

###############################################################################
# the core's exactness cases, through nginx

my $cases = do {
    open my $fh, '<', "$FindBin::Bin/unit/export_cases.json" or die $!;
    local $/;
    JSON::PP->new->utf8->decode(<$fh>);
};

my ($checked, $bad) = (0, 0);

for my $c (@$cases) {
    my $o = $c->{options} || {};
    next if $o->{labels} || ($o->{environment} // '') =~ /[^\w-]/;
    next unless ref $c->{expect} eq 'ARRAY';

    my @want = map { $_->{message} } grep { $_->{status} eq 'event' }
               @{ $c->{expect} };
    my $before = () = seg_messages();

    my $loc = defined $o->{project} ? '/cases/p/bulk' : '/cases/np/bulk';
    my ($code) = post($loc, $c->{body}, 'X-Env' => $o->{environment},
        defined $o->{payload_id}
            ? ('X-LaunchDarkly-Payload-ID' => $o->{payload_id}) : ());

    $bad++, diag("$c->{name}: $code") unless $code == 202;

    wait_messages($before + @want) if @want;
    my @all = seg_messages();
    my @got = @all[$before .. $before + @want - 1];

    for my $i (0 .. $#want) {
        $checked++;

        # no payload ID: the core's hash of the body, 16 hex digits
        if ($want[$i]{messageId} =~ /^HASH-(\d+)$/
            && ($got[$i]{messageId} // '') =~ /^[0-9a-f]{16}-$1$/)
        {
            $want[$i] = { %{ $want[$i] }, messageId => $got[$i]{messageId} };
        }

        next if $J->encode($got[$i] // {}) eq $J->encode($want[$i]);
        $bad++;
        diag("$c->{name} #$i: got " . $J->encode($got[$i] // {})
             . "\nwant " . $J->encode($want[$i]));
    }
}

ok($checked >= 10, "exactness cases checked ($checked messages)");
is($bad, 0, 'every case arrives at Segment as the core makes it');

###############################################################################
# status per write key: counts, the write key never in clear

my $WK1 = Test::Ldseg::key_label('wk-one');

$st = $t->status;
my %wk = map { $_->{write_key} => $_ } @{ $st->{export}{write_keys} };
ok($wk{$WK1}, 'write key shown by its first characters and a hash');
is($wk{$WK1}{exported}, 12, 'exported for wk-one');
is($wk{$WK1}{skipped}, 12, 'skipped for wk-one (index, identify, '
   . 'summary)');
Test::Ldseg::wait_for(sub {
    ($t->status->{export}{write_keys}[0]{delivered} // 0) == 12 }, 5);
$st = $t->status;
%wk = map { $_->{write_key} => $_ } @{ $st->{export}{write_keys} };
is($wk{$WK1}{delivered}, 12, 'delivered for wk-one');
my (undef, undef, $sb) = $t->http_get('/status');
unlike($sb, qr/wk-one/, 'no write key in clear');

my (undef, undef, $prom) = $t->http_get('/status?format=prometheus');
like($prom,
     qr/^ldseg_export_write_key_exported_total\{write_key="\Q$WK1\E"\} 12$/m,
     'prometheus per write key');
like($prom, qr/^# TYPE ldseg_export_delivered_total counter$/m,
     'prometheus export totals');

# the Segment destinations in the per-destination status: kind "segment",
# the write key's label, the export URL

my %dk;
$dk{ $_->{kind} // 'none' }++ for @{ $st->{destinations} };
is(join(',', map { "$_=$dk{$_}" } sort keys %dk), 'segment=4',
   'per destination: every one of kind segment (four write keys)');

my ($sd) = grep { ($_->{write_key} // '') eq $WK1 }
           @{ $st->{destinations} };
is(join(' ', map { $_ // 'null' }
             @{ $sd || {} }{qw(kind write_key client_side_id events_url
                               delivered)}),
   "segment $WK1 null $SEG 12",
   'per destination: the write key\'s label, no client-side ID, the export'
   . ' URL, its delivered messages');
like($prom, qr/^ldseg_destination_delivered_total\{kind="segment",
                write_key="\Q$WK1\E",events_url="\Q$SEG\E"\}\ 12$/mx,
     'prometheus per destination: labels kind, write_key, events_url');
unlike($prom, qr/client_side_id="batch"/,
       'prometheus: no "batch" taken for a client-side ID');
unlike($prom, qr/wk-one|wk-client/, 'prometheus: no write key in clear');

###############################################################################
# Segment down and the queue full: the SDK's requests still go on

$seg->script(default => { status => 503 });

my $pad = 'x' x 30000;
my $heavy = '[' . join(',', map {
    qq({"kind":"custom","creationDate":1700000000000,"key":"k$_",)
    . qq("contextKeys":{"user":"h"},"data":{"pad":"$pad"}})
} 1 .. 4) . ']';

my $ok = 0;
my $nld = () = ld_posts();

for (1 .. 6) {
    my ($c) = post('/bulk', $heavy, 'Authorization' => 'sdk-key-one');
    $ok++ if $c == 202;
}

is($ok, 6, 'queue full: every SDK request answered by LaunchDarkly');
is(scalar(() = ld_posts()), $nld + 6, 'LaunchDarkly got every post');

$st = $t->status;
ok($st->{export}{dropped} > 0, 'dropped exports counted');
%wk = map { $_->{write_key} => $_ } @{ $st->{export}{write_keys} };
my $WKC = Test::Ldseg::key_label('wk-cases');
is($wk{$WK1}{dropped} + ($wk{$WKC}{dropped} // 0), $st->{export}{dropped},
   'dropped counted for the write keys');
is($wk{$WKC}{dropped}, 1, 'the case over 32 KB: dropped (no dead letter'
   . ' here), never cut');
ok($st->{export}{failed} > 0, 'failed POSTs to Segment counted');

# Segment back: what was queued is delivered

$seg->script(default => { status => 200 });
my $queued = $wk{$WK1}{exported};
ok(Test::Ldseg::wait_for(sub {
    my $s = $t->status;
    my %k = map { $_->{write_key} => $_ } @{ $s->{export}{write_keys} };
    $k{$WK1}{delivered} == $queued }, 15),
   'queued exports delivered once Segment is back');

$t->stop;

like($t->read_file('error.log'),
     qr/\[warn\].*the queue is full, \d+ exported events for write key "wk-o\.\.\." dropped/,
     'dropped exports logged');
unlike(join("\n", grep { !/\[debug\]/ } split /\n/, $t->read_file('error.log')),
       qr/wk-one/, 'write key never logged above debug');

###############################################################################
