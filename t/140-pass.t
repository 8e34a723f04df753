#!/usr/bin/perl

# ldseg_pass: after ldseg accepted a request, the untouched original request
# (method, URI, headers, body) goes to a named location that proxies it to a
# real upstream, and the client gets the upstream's answer.  Requests ldseg
# refuses are answered by ldseg and never reach the upstream.  The upstream
# is a second server of the same nginx that logs what it received.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(30);
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

    log_format upstream escape=json
        '{"method":"$request_method","uri":"$request_uri",'
        '"ct":"$http_content_type","auth":"$http_authorization",'
        '"x":"$http_x_test","cl":"$http_content_length",'
        '"te":"$http_transfer_encoding","body":"$request_body"}';

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        client_body_buffer_size 1k;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id PASS;
            ldseg_pass @up;
        }

        location @up {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }

    # the upstream: logs the request, answers 201

    server {
        listen 127.0.0.1:%%PORT_8081%%;

        client_body_buffer_size 1m;
        client_max_body_size 1m;

        location / {
            access_log %%TESTDIR%%/upstream.log upstream;
            add_header X-Upstream yes always;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/reply;
        }

        location /reply {
            return 201 "upstream says hi";
        }
    }
}
EOF

$t->run;

###############################################################################

my $TS = '2020-02-03T04:05:06.007Z';

# upstream log lines, decoded; the body stays bytes

sub upstream {
    my @l;
    for (split /\n/, $t->read_file('upstream.log')) {
        my $v = eval { JSON::PP->new->decode($_) };
        push @l, $v if $v;
    }
    return @l;
}

# byte-exact comparison that does not print 20 KB on failure

sub same_body {
    my ($got, $want, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $got //= '<none>';
    return 1 if ok($got eq $want, $name);
    my $i = 0;
    $i++ while $i < length($got) && $i < length($want)
               && substr($got, $i, 1) eq substr($want, $i, 1);
    diag(sprintf('got %d bytes, want %d; first difference at %d: '
                 . 'got "%s", want "%s"', length $got, length $want, $i,
                 substr($got, $i, 40), substr($want, $i, 40)));
    return 0;
}

sub wait_upstream {
    my ($n) = @_;
    Test::Ldseg::wait_for(sub { upstream() >= $n }, 5);
    return upstream();
}

# the upstream's line for the request whose body holds marker, once n
# lines are there: two workers write the log, each when its request ends,
# so a line may come after the next request's

sub upstream_for {
    my ($n, $marker) = @_;
    my @m = grep { index($_->{body} // '', $marker) >= 0 } wait_upstream($n);
    return @m == 1 ? $m[0] : { body => scalar(@m) . " lines with $marker" };
}

# a track with a UTF-8 name, extra header, auth and query string

my $body = "{\"userId\":\"pass-1\",\"event\":\"Pass \xc3\xa9t\xc3\xa9\","
    . '"timestamp":"' . $TS . '","properties":{"a" : 1 , "b":[true,null]}}';

my ($code, $h, $b) = $t->http_post('/v1/track?via=test&x=%20y', $body,
    'X-Test' => 'hello',
    'Authorization' => Test::Ldseg::basic_auth('wk-pass'));

is($code, 201, 'upstream status');
is($b, 'upstream says hi', 'upstream body');
is($h->{'x-upstream'}, 'yes', 'upstream header');

my @u = wait_upstream(1);
is(scalar @u, 1, 'upstream saw the request');
is($u[0]{method}, 'POST', 'method');
is($u[0]{uri}, '/v1/track?via=test&x=%20y', 'uri and query string');
same_body($u[0]{body}, $body, 'body untouched, byte for byte');
is($u[0]{cl}, length $body, 'content length');
is($u[0]{ct}, 'application/json', 'content type');
is($u[0]{x}, 'hello', 'custom header');
is($u[0]{auth}, Test::Ldseg::basic_auth('wk-pass'), 'authorization');

# analytics.js style

my $plain = '{"anonymousId":"anon-2","event":"Plain","writeKey":"wk",'
    . '"timestamp":"' . $TS . '"}';
($code, $h, $b) = $t->http_post('/v1/t', $plain,
                                'Content-Type' => 'text/plain');
is($code, 201, 'text/plain passed');
my $u = upstream_for(2, '"anon-2"');
same_body($u->{body}, $plain, 'text/plain body untouched');
is($u->{ct}, 'text/plain', 'text/plain content type kept');

# skipped messages (page) are accepted, hence passed

($code) = $t->http_post('/v1/page',
                        '{"userId":"u","name":"Home","timestamp":"' . $TS . '"}');
is($code, 201, 'page passed');

# a batch with a rejected message is accepted: passed; valid events sent

my $batch = '{"batch":[{"type":"track","userId":"pass-3","event":"Batch OK",'
    . '"timestamp":"' . $TS . '"},{"type":"track","userId":"pass-3"}]}';
($code) = $t->http_post('/v1/batch', $batch);
is($code, 201, 'batch with a rejected message passed');
same_body(upstream_for(4, '"pass-3"')->{body}, $batch,
          'batch body untouched');

# a body nginx kept in a temp file (1k buffer) is passed whole

my $big = '{"userId":"pass-4","event":"Big Pass","timestamp":"' . $TS . '",'
    . '"properties":{"pad":"' . ('0123456789' x 2000) . '"}}';
($code) = $t->http_post('/v1/track', $big);
is($code, 201, '20 KB body passed');
same_body(upstream_for(5, '"pass-4"')->{body}, $big,
          '20 KB body untouched');

# a chunked body

my $chunked = '{"userId":"pass-5","event":"Chunked Pass","timestamp":"'
    . $TS . '"}';
($code) = $t->http_post('/v1/track',
    sprintf("%x\r\n%s\r\n0\r\n\r\n", length $chunked, $chunked),
    'Transfer-Encoding' => 'chunked');
is($code, 201, 'chunked body passed');
same_body(upstream_for(6, '"pass-5"')->{body}, $chunked,
          'chunked body untouched');

# refused by ldseg: answered by ldseg, upstream not involved

my $n = upstream();

($code, $h, $b) = $t->http_post('/v1/track', '{"userId":');
is($code, 400, 'bad JSON answered by ldseg');
is((Test::Ldseg::json($b) || {})->{code}, 'invalid_json', 'bad JSON code');

($code, $h, $b) = $t->http_post('/v1/track', '{"userId":"u"}');
is($code, 400, 'invalid message answered by ldseg');

($code, $h, $b) = $t->http_post('/v1/nope', '{"userId":"u","event":"e"}');
is($code, 404, 'unknown endpoint answered by ldseg');

($code, $h, $b) = $t->http_get('/v1/track');
is($code, 405, 'GET answered by ldseg');

select undef, undef, undef, 0.5;
is(scalar(upstream()), $n, 'upstream did not see refused requests');

###############################################################################

# LaunchDarkly got the accepted events

my @keys = ('Pass ' . "\x{e9}t\x{e9}", 'Plain', 'Batch OK', 'Big Pass',
            'Chunked Pass');
is($mock->wait_events(5, 10), 5, 'five events delivered');
select undef, undef, undef, 0.5;
is(join('|', sort map { $_->{key} } $mock->events), join('|', sort @keys),
   'the accepted events, once each');

my ($e) = grep { $_->{key} eq 'Big Pass' } $mock->events;
is(length($e ? $e->{data}{pad} : ''), 20000, 'big event intact');

###############################################################################
