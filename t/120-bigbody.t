#!/usr/bin/perl

# Request bodies that nginx writes to a temporary file
# (client_body_buffer_size 1k): they must be handled exactly like bodies in
# memory, a 20 KB track, a 400 KB batch, a chunked body, bad JSON and an
# oversized message included.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(17);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 8m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        client_body_buffer_size 1k;
        client_max_body_size 2m;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id BIGBODY;
        }
    }
}
EOF

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2023-03-04T05:06:07.089Z';

# 20 KB track; the pad has every printable ASCII character and some UTF-8

my $pad = join('', map { chr } 32 .. 126) . "\x{e9}\x{1F600}";
$pad = substr($pad x 300, 0, 20000);

my ($code, undef, $body) = $t->http_post('/v1/track', $J->encode({
    userId => 'big-user', event => 'Big Track', timestamp => $TS,
    properties => { pad => $pad, revenue => 7 } }));
is($code, 200, '20 KB track from a temp file');
is_deeply(Test::Ldseg::json($body), { success => JSON::PP::true },
          '20 KB track answer');

like($t->read_file('error.log'),
     qr/a client request body is buffered to a temporary file/,
     'the body really was in a file');

# 400 KB batch: 400 messages of about 1 KB

my @batch = map { {
    type => 'track', userId => "u$_", event => "Batch $_", timestamp => $TS,
    properties => { i => $_, pad => 'b' x 950 } } } 0 .. 399;
my $batch = $J->encode({ batch => \@batch });
cmp_ok(length $batch, '>', 400_000, 'batch is over 400 KB');
cmp_ok(length $batch, '<', 500_000, 'batch is under 500 KB');

($code, undef, $body) = $t->http_post('/v1/batch', $batch);
is($code, 200, '400 KB batch from a temp file');
my $j = Test::Ldseg::json($body) || {};
ok($j->{success} && !$j->{rejected}, '400 KB batch: nothing rejected')
    or diag($body);

# chunked request body

my $chunked_body = $J->encode({ userId => 'chunk-user', event => 'Chunked',
    timestamp => $TS, properties => { pad => 'c' x 20000 } });
my $chunks = '';
for (my $i = 0; $i < length $chunked_body; $i += 3000) {
    my $part = substr $chunked_body, $i, 3000;
    $chunks .= sprintf("%x\r\n%s\r\n", length $part, $part);
}
$chunks .= "0\r\n\r\n";

($code, undef, $body) = $t->http_post('/v1/t', $chunks,
    'Transfer-Encoding' => 'chunked', 'Content-Type' => 'text/plain');
is($code, 200, 'chunked 20 KB body') or diag($body);

# errors are the same from a file

($code, undef, $body) = $t->http_post('/v1/track',
    '{"userId":"u","event":"x","properties":{"pad":"' . ('x' x 5000));
is($code, 400, 'truncated JSON from a file');
is((Test::Ldseg::json($body) || {})->{code}, 'invalid_json',
   'truncated JSON from a file: invalid_json');

($code, undef, $body) = $t->http_post('/v1/track', $J->encode({
    userId => 'u', event => 'Too Big', properties => { pad => 'x' x 40000 } }));
is($code, 400, 'message over 32 KB from a file');
is((Test::Ldseg::json($body) || {})->{code}, 'too_large',
   'message over 32 KB from a file: too_large');

($code, undef, $body) = $t->http_post('/v1/batch', $J->encode({ batch => [
    { type => 'track', userId => 'u', properties => { pad => 'p' x 3000 } },
    { type => 'track', userId => 'file-mixed', event => 'File Mixed',
      timestamp => $TS, properties => { pad => 'q' x 3000 } },
] }));
$j = Test::Ldseg::json($body) || {};
ok($code == 200 && @{ $j->{rejected} || [] } == 1
   && $j->{rejected}[0]{index} == 0
   && $j->{rejected}[0]{code} eq 'missing_event',
   'mixed batch from a file') or diag($body);

###############################################################################

my $want = 1 + 400 + 1 + 1;
is($mock->wait_events($want, 30), $want, "$want events delivered");
select undef, undef, undef, 0.5;

my @ev = $mock->events;
my ($big) = grep { $_->{key} eq 'Big Track' } @ev;
ok($big && $big->{data}{pad} eq $pad && $big->{metricValue} == 7
   && $big->{contextKeys}{user} eq 'big-user',
   '20 KB track delivered intact');

my %seen;
$seen{ $_->{data}{i} }++ for grep { $_->{key} =~ /^Batch \d+$/ } @ev;
is(join(',', grep { ($seen{$_} // 0) != 1 } 0 .. 399), '',
   'every batch message delivered exactly once');

my ($ch) = grep { $_->{key} eq 'Chunked' } @ev;
is($ch && length $ch->{data}{pad}, 20000, 'chunked body delivered intact');

###############################################################################
