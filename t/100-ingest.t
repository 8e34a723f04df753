#!/usr/bin/perl

# Ingestion: every Segment endpoint and its short form, text/plain bodies,
# the JSON answers (200, 200 with a "rejected" list, 400 with a code, 404,
# 405), limits, and which messages reach LaunchDarkly.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(92);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        client_max_body_size 4m;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id INGEST;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2024-01-15T10:20:30.123Z';
my $TS_MS = 1705314030123;

# POST and decode; returns (status, decoded body or undef, headers)

sub post {
    my ($path, $body, %h) = @_;
    $body = $J->encode($body) if ref $body;
    my ($code, $hdr, $b) = $t->http_post($path, $body, %h);
    return ($code, Test::Ldseg::json($b), $hdr, $b);
}

# a 200 answer with {"success":true} and nothing else

sub ok_200 {
    my ($path, $body, $name, %h) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($code, $j, $hdr, $raw) = post($path, $body, %h);
    ok($code == 200 && ref $j eq 'HASH' && $j->{success}
       && JSON::PP::is_bool($j->{success}) && keys %$j == 1
       && ($hdr->{'content-type'} // '') =~ m{^application/json},
       $name) or diag("$code $raw");
}

# a 4xx answer {"success":false,"code":$code,"message":"..."}

sub err {
    my ($path, $body, $status, $ecode, $name, %h) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($code, $j, $hdr, $raw) = post($path, $body, %h);
    ok($code == $status && ref $j eq 'HASH'
       && JSON::PP::is_bool($j->{success}) && !$j->{success}
       && ($j->{code} // '') eq $ecode
       && defined $j->{message} && length $j->{message}
       && ($hdr->{'content-type'} // '') =~ m{^application/json},
       $name) or diag("$code $raw");
}

sub track {
    my ($event, %m) = @_;
    return { userId => "user-$event", event => $event,
             timestamp => $TS, %m };
}

###############################################################################

# every endpoint, long and short; events are keyed so each can be found

my %want;       # event key => kind

for my $ep (qw(track t)) {
    ok_200("/v1/$ep", track("E-$ep"), "/v1/$ep");
    $want{"E-$ep"} = 'custom';
}

for my $ep (qw(identify i)) {
    ok_200("/v1/$ep", { userId => "U-$ep", anonymousId => "A-$ep",
                        timestamp => $TS }, "/v1/$ep");
    $want{"U-$ep"} = 'alias';
}

for my $ep (qw(alias a)) {
    ok_200("/v1/$ep", { userId => "U-$ep", previousId => "P-$ep",
                        timestamp => $TS }, "/v1/$ep");
    $want{"U-$ep"} = 'alias';
}

for my $ep (qw(page p screen s group g)) {
    ok_200("/v1/$ep", { userId => "U-$ep", name => 'n', groupId => 'g1',
                        timestamp => $TS }, "/v1/$ep (accepted, not sent)");
}

for my $ep (qw(batch b import)) {
    ok_200("/v1/$ep", { batch => [ { type => 'track', %{ track("E-$ep") } } ] },
           "/v1/$ep");
    $want{"E-$ep"} = 'custom';
}

# text/plain with writeKey in the body, as analytics.js sends it

ok_200('/v1/t', { %{ track('E-plain') }, writeKey => 'wk' },
       'text/plain track', 'Content-Type' => 'text/plain');
$want{'E-plain'} = 'custom';

ok_200('/v1/track', track('E-charset'), 'application/json; charset=utf-8',
       'Content-Type' => 'application/json; charset=utf-8');
$want{'E-charset'} = 'custom';

# the endpoint decides the type of a single message

ok_200('/v1/track', { %{ track('E-typed') }, type => 'identify' },
       'type in the body is ignored on /v1/track');
$want{'E-typed'} = 'custom';

# identify without previousId/anonymousId: accepted, nothing sent

ok_200('/v1/identify', { userId => 'U-lonely', timestamp => $TS },
       'identify without anonymous id');

# the query string does not change the endpoint

ok_200('/v1/track?x=1', track('E-query'), 'query string');
$want{'E-query'} = 'custom';

# batch with valid, invalid and skipped messages

my ($code, $j, $hdr, $raw) = post('/v1/batch', { batch => [
    { type => 'track', %{ track('E-mix0') } },
    { type => 'track', userId => 'u', timestamp => $TS },
    { type => 'alias', userId => 'U-mix2', previousId => 'P-mix2' },
    { type => 'track', %{ track('E-mix3') }, properties => [1, 2] },
    { type => 'page', userId => 'u', name => 'p' },
    { type => 'wobble', userId => 'u' },
    { type => 'track', event => 'no-identity', timestamp => $TS },
    { type => 'track', %{ track('E-mix7') }, timestamp => 'yesterday' },
    'not an object',
    { type => 'track', %{ track('E-mix9') } },
] });
$want{'E-mix0'} = 'custom';
$want{'U-mix2'} = 'alias';
$want{'E-mix9'} = 'custom';

is($code, 200, 'mixed batch: 200');
ok($j && JSON::PP::is_bool($j->{success}) && $j->{success},
   'mixed batch: success true') or diag($raw);
my @rej = @{ ($j && ref $j->{rejected} eq 'ARRAY') ? $j->{rejected} : [] };
is(join(' ', map { $_->{index} // '?' } @rej), '1 3 5 6 7 8',
   'mixed batch: rejected indexes') or diag($raw);
my %rc = map { ($_->{index} // '?') => $_->{code} // '' } @rej;
is($rc{1}, 'missing_event', 'mixed batch: missing_event');
is($rc{3}, 'invalid_properties', 'mixed batch: invalid_properties');
is($rc{5}, 'invalid_type', 'mixed batch: invalid_type');
is($rc{6}, 'missing_identity', 'mixed batch: missing_identity');
is($rc{7}, 'invalid_timestamp', 'mixed batch: invalid_timestamp');
is($rc{8}, 'not_an_object', 'mixed batch: not_an_object');
ok(!grep({ !defined $_->{message} || !length $_->{message} } @rej),
   'mixed batch: every rejection has a message');

# a batch where every message is rejected is still a 200

($code, $j) = post('/v1/batch', { batch => [ { type => 'track' } ] });
ok($code == 200 && $j && @{ $j->{rejected} || [] } == 1,
   'batch with only invalid messages: 200 with rejected');

# empty batch

ok_200('/v1/batch', { batch => [] }, 'empty batch');

###############################################################################

# unknown endpoint, method

err('/v1/tracks', track('x'), 404, 'unknown_endpoint', 'unknown endpoint');
err('/v1/x', track('x'), 404, 'unknown_endpoint', 'unknown short endpoint');
err('/v1/', track('x'), 404, 'unknown_endpoint', 'no endpoint');

for my $m (qw(GET PUT DELETE)) {
    err('/v1/track', $m eq 'GET' ? undef : track('x'), 405,
        'method_not_allowed', "$m not allowed", -method => $m);
}

# bad bodies on a single-message endpoint

err('/v1/track', '{"userId":"u","event":', 400, 'invalid_json',
    'truncated JSON');
err('/v1/track', 'userId=u&event=x', 400, 'invalid_json', 'not JSON');
err('/v1/track', '', 400, 'invalid_json', 'empty body');
err('/v1/track', '[{"userId":"u","event":"e"}]', 400, 'not_an_object',
    'array body');
err('/v1/track', '"track"', 400, 'not_an_object', 'string body');
err('/v1/track', 'null', 400, 'not_an_object', 'null body');
err('/v1/track', '{"userId":"u","event":"e"} x', 400, 'invalid_json',
    'trailing garbage');

err('/v1/track', { userId => 'u', timestamp => $TS }, 400, 'missing_event',
    'track without event');
err('/v1/track', { userId => 'u', event => '' }, 400, 'missing_event',
    'track with empty event');
err('/v1/track', { userId => 'u', event => { a => 1 } }, 400,
    'missing_event', 'track with an object as event');
err('/v1/track', { event => 'e' }, 400, 'missing_identity',
    'track without ids');
err('/v1/track', { userId => '', anonymousId => undef, event => 'e' }, 400,
    'missing_identity', 'track with empty ids');
err('/v1/track', { userId => { id => 1 }, event => 'e' }, 400,
    'missing_identity', 'object as userId');
err('/v1/track', { userId => 'u', event => 'e', properties => 'p' }, 400,
    'invalid_properties', 'string properties');
err('/v1/track', { userId => 'u', event => 'e', properties => [] }, 400,
    'invalid_properties', 'array properties');
err('/v1/track', { userId => 'u', event => 'e', timestamp => 'not a date' },
    400, 'invalid_timestamp', 'bad timestamp');
err('/v1/track', { userId => 'u', event => 'e', timestamp => JSON::PP::true },
    400, 'invalid_timestamp', 'boolean timestamp');
err('/v1/alias', { anonymousId => 'a', previousId => 'p' }, 400,
    'missing_user_id', 'alias without userId');
err('/v1/alias', { userId => 'u' }, 400, 'missing_previous_id',
    'alias without previousId');
err('/v1/a', { userId => 'u' }, 400, 'missing_previous_id',
    'short alias without previousId');

# a non-numeric revenue: 200 with nothing sent, or 400 invalid_metric

($code, $j, undef, $raw) = post('/v1/track',
    track('E-badmetric', properties => { revenue => 'lots' }));
ok(($code == 200 && $j && $j->{success})
   || ($code == 400 && $j && ($j->{code} // '') eq 'invalid_metric'),
   'non-numeric revenue: 200 or 400 invalid_metric') or diag("$code $raw");

# bad batch bodies

err('/v1/batch', { batch => 'x' }, 400, 'invalid_batch', 'batch not array');
err('/v1/batch', { nobatch => [] }, 400, 'invalid_batch', 'batch missing');
err('/v1/b', '[]', 400, 'not_an_object', 'batch body an array');
err('/v1/batch', '{"batch":[', 400, 'invalid_json', 'batch truncated');

# nesting

my $deep = '{"userId":"u","event":"deep","properties":{"a":'
    . ('[' x 5000) . (']' x 5000) . '}}';
err('/v1/track', $deep, 400, 'too_deep', 'too deep');

# sizes: 32 KB per message, 500 KB and 2500 messages per batch

my $pad = 'x' x (33 * 1024);
err('/v1/track', track('E-big', properties => { pad => $pad }), 400,
    'too_large', 'message over 32 KB');

my $small = 'y' x (30 * 1024);
ok_200('/v1/track', track('E-30k', properties => { pad => $small }),
       'message of 30 KB');
$want{'E-30k'} = 'custom';

my $msg = { type => 'track', %{ track('E-many') }, properties =>
            { pad => 'z' x 1000 } };
err('/v1/batch', { batch => [ ($msg) x 520 ] }, 400, 'too_large',
    'batch over 500 KB');

my $tiny = { type => 'track', userId => 'u', event => 'E-2501' };
err('/v1/batch', { batch => [ ($tiny) x 2501 ] }, 400, 'too_many_messages',
    'batch of 2501 messages');

# a batch message over 32 KB is rejected alone

($code, $j, undef, $raw) = post('/v1/batch', { batch => [
    { type => 'track', %{ track('E-bigitem', properties => { pad => $pad }) } },
    { type => 'track', %{ track('E-afterbig') } },
] });
$want{'E-afterbig'} = 'custom';
ok($code == 200 && $j && @{ $j->{rejected} || [] } == 1
   && $j->{rejected}[0]{index} == 0
   && $j->{rejected}[0]{code} eq 'too_large',
   'oversized batch message rejected alone') or diag("$code $raw");

###############################################################################

# what reached LaunchDarkly: exactly the wanted events

my $n = keys %want;
is($mock->wait_events($n, 15), $n, "$n events delivered");

# give stragglers (events that must not exist) a chance to show up

select undef, undef, undef, 1;

my %got;
for my $e ($mock->events) {
    $got{ $e->{key} }++;
}

is_deeply(\%got, { map { $_ => 1 } keys %want },
          'each wanted event exactly once, nothing else');

for my $k (sort keys %want) {
    my ($e) = grep { $_->{key} eq $k } $mock->events;
    is($e && $e->{kind}, $want{$k}, "kind of $k");
}

my ($e) = grep { $_->{key} eq 'E-track' } $mock->events;
is_deeply($e, { kind => 'custom', key => 'E-track', creationDate => $TS_MS,
                contextKeys => { user => 'user-E-track' }, data => {} },
          'track event translated');

($e) = grep { $_->{key} eq 'U-identify' } $mock->events;
is_deeply($e, { kind => 'alias', key => 'U-identify',
                previousKey => 'A-identify', contextKind => 'user',
                previousContextKind => 'anonymousUser',
                creationDate => $TS_MS },
          'identify event translated');

is(scalar(grep { $_->{client_id} ne 'INGEST' } $mock->posts), 0,
   'all posts to the configured client-side id');

###############################################################################
