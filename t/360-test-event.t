#!/usr/bin/perl

# The test event: "POST <status location>/test?client_side_id=ID" sends one
# synthetic custom event (key "ldseg-test-event") to that ID's events URL
# at once, waits for LaunchDarkly's answer and replies with its status and
# the payload ID: 200 when LaunchDarkly took it, 502 when it did not (or
# did not answer within ldseg_timeout); only POST; the ID is checked.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(12);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_timeout 2s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /status {
            ldseg_status;
        }
    }
}
EOF

$mock->script(default => { status => 202 }, steps => [
    { status => 401, path => 'WRONG-ID', times => 100 },
    { hang => 1, path => 'HANG-ID', times => 100 },
]);

$t->run;

###############################################################################

my ($code, $h, $body) = $t->http_post('/status/test?client_side_id=TEST-ID',
                                      '');
my $j = Test::Ldseg::json($body) || {};
is($code, 200, 'LaunchDarkly took it: 200');
is($j->{status}, 202, 'its status: 202');
is($j->{client_side_id}, 'TEST-ID', 'the client-side ID');

my ($post) = grep { $_->{client_id} eq 'TEST-ID' } $mock->posts;
ok($post, 'LaunchDarkly got a POST for TEST-ID');
is($j->{payload_id}, $post && $post->{headers}{'x-launchdarkly-payload-id'},
   'the payload ID of that POST');
my $ev = ($post && $post->{events} || [])->[0] || {};
is(($ev->{kind} // '') . ' ' . ($ev->{key} // ''), 'custom ldseg-test-event',
   'one custom event, key ldseg-test-event');

($code, undef, $body) = $t->http_post('/status/test?client_side_id=WRONG-ID',
                                      '');
$j = Test::Ldseg::json($body) || {};
is($code . ' ' . ($j->{status} // ''), '502 401',
   'a refused ID: 502 with status 401');

($code, undef, $body) = $t->http_post('/status/test?client_side_id=HANG-ID',
                                      '', -timeout => 10);
$j = Test::Ldseg::json($body) || {};
ok($code == 502 && $j->{status} == 0 && length($j->{error} // ''),
   'no answer within ldseg_timeout: 502, status 0 and the error')
    or diag($body);

($code) = $t->http_get('/status/test?client_side_id=TEST-ID');
is($code, 405, 'GET: 405');

($code, undef, $body) = $t->http_post('/status/test?client_side_id=a/b', '');
is($code, 400, 'an ID that is not a token: 400');

# the test POSTs are not the queue's

my $s = $t->status;
is($s->{posts}{sent} . ' ' . $s->{queued}, '0 0',
   'status: no queued event, no queue POST');
is(scalar(grep { $_->{client_id} eq 'TEST-ID' } $mock->posts), 1,
   'one POST for TEST-ID in all');

###############################################################################
