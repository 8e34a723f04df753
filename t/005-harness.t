#!/usr/bin/perl

# Tests for the test harness itself: Test::Ldseg with plain nginx (no ldseg
# module) and the mock LaunchDarkly endpoint (keep-alive, chunked bodies,
# Expect: 100-continue, gzip, scripted answers).  Runs before the module
# exists, so a broken mock is not mistaken for a broken module.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use IO::Compress::Gzip qw(gzip);
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

###############################################################################

my $t = Test::Ldseg->new(no_module => 1)->plan(35);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /events/ {
            proxy_pass %%MOCK%%;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }

        location /hello {
            return 200 "hello\n";
        }
    }
}

EOF

$t->run;

###############################################################################

# raw client for the mock: several requests on one connection

sub mock_conn {
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                 PeerPort => $mock->port, Timeout => 5);
}

sub read_answer {
    my ($s, $timeout) = @_;
    my $buf = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + ($timeout || 5);
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread $s, $buf, 4096, length $buf;
        last unless $n;
        if ($buf =~ /\r\n\r\n/ && $buf =~ /Content-Length: (\d+)/i) {
            my $len = $1;
            my $h = index($buf, "\r\n\r\n") + 4;
            last if length($buf) >= $h + $len;
        }
    }
    return $buf;
}

my $s = mock_conn();
print $s "POST /events/bulk/ID-1 HTTP/1.1\r\nHost: x\r\n"
    . "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
    . '[{"kind":"a"}';
my $a1 = read_answer($s);
like($a1, qr{^HTTP/1.1 202 }, 'mock answers 202 by default');
close $s;

my $body2 = '[{"kind":"b"},{"kind":"c"}]';
$s = mock_conn();
print $s "POST /events/bulk/ID-2 HTTP/1.1\r\nHost: x\r\n"
    . "Content-Length: " . length($body2) . "\r\n\r\n$body2";
like(read_answer($s), qr{^HTTP/1.1 202 }, 'first request on connection');

# chunked, on the same connection
print $s "POST /events/bulk/ID-2 HTTP/1.1\r\nHost: x\r\n"
    . "Transfer-Encoding: chunked\r\n\r\n"
    . "5\r\n[{\"ki\r\n9\r\nnd\":\"d\"}]\r\n0\r\n\r\n";
like(read_answer($s), qr{^HTTP/1.1 202 }, 'chunked request, same connection');

# Expect: 100-continue
my $body3 = '[{"kind":"e"}]';
print $s "POST /events/bulk/ID-3 HTTP/1.1\r\nHost: x\r\n"
    . "Expect: 100-continue\r\nContent-Length: " . length($body3) . "\r\n\r\n";
my $cont = read_answer($s, 2);
like($cont, qr{^HTTP/1.1 100 Continue\r\n\r\n}, '100 Continue');
print $s $body3;
like(read_answer($s), qr{^HTTP/1.1 202 }, 'answer after 100 Continue');

# gzip
my $gz;
gzip(\'[{"kind":"f"}]' => \$gz);
print $s "POST /events/bulk/ID-3 HTTP/1.1\r\nHost: x\r\n"
    . "Content-Encoding: gzip\r\nContent-Length: " . length($gz) . "\r\n\r\n"
    . $gz;
like(read_answer($s), qr{^HTTP/1.1 202 }, 'gzip request');
close $s;

$mock->wait_requests(5, 5);
my @r = $mock->requests;
is(scalar @r, 5, 'five requests recorded');
is($r[0]{body}, '[{"kind":"a"}', 'body recorded by Content-Length');
is($r[1]{conn}, $r[2]{conn}, 'keep-alive: same connection');
is($r[2]{chunked}, 1, 'chunked noted');
is($r[2]{body}, '[{"kind":"d"}]', 'chunked body reassembled');
is($r[3]{expect}, 1, 'expect noted');
is($r[4]{gzip}, 1, 'gzip noted');
is($r[4]{body}, '[{"kind":"f"}]', 'gzip body inflated');
is($r[1]{client_id}, 'ID-2', 'client id from path');
is(join(',', map { $_->{kind} } $mock->events),
   'b,c,d,e,f', 'events of accepted posts (first body is not JSON)');
is(scalar($mock->events(client_id => 'ID-3')), 2, 'events by client id');

# scripted answers

$mock->script(steps => [
    { status => 503 },
    { status => 429, retry_after => 2 },
    { status => 401, path => 'OTHER' },
    { reset => 1 },
    { delay => 1.5, status => 200 },
]);

sub post_mock {
    my ($path) = @_;
    my $s = mock_conn() or return '';
    print $s "POST $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Content-Length: 2\r\n\r\n[]";
    my $a = read_answer($s, 5);
    close $s;
    return $a;
}

like(post_mock('/events/bulk/OTHER'), qr{^HTTP/1.1 401 },
     'path-matched step first');
like(post_mock('/events/bulk/A'), qr{^HTTP/1.1 503 }, 'step 1: 503');
my $a429 = post_mock('/events/bulk/A');
like($a429, qr{^HTTP/1.1 429 }, 'step 2: 429');
like($a429, qr{\r\nRetry-After: 2\r\n}, 'Retry-After sent');
is(post_mock('/events/bulk/A'), '', 'step 4: reset, no answer');
my $t0 = time;
like(post_mock('/events/bulk/A'), qr{^HTTP/1.1 200 }, 'delayed answer');
cmp_ok(time - $t0, '>=', 1.4, 'answer was delayed');
like(post_mock('/events/bulk/A'), qr{^HTTP/1.1 202 }, 'then default');

my @st = map { $_->{status} } ($mock->requests)[5 .. 10];
is("@st", '401 503 429 reset 200 202', 'answers recorded');

# a client that gives up before a delayed answer: recorded as aborted

$mock->script(steps => [ { delay => 3 } ]);
my $ab = mock_conn();
print $ab "POST /events/bulk/A HTTP/1.1\r\nHost: x\r\n"
    . "Content-Length: 2\r\n\r\n[]";
$mock->wait_requests(12, 5);
close $ab;
Test::Ldseg::wait_for(sub { ($mock->requests)[-1]{status} eq 'aborted' }, 5);
is(($mock->requests)[-1]{status}, 'aborted', 'abandoned request: aborted');

$mock->script(default => { status => 500 });
like(post_mock('/events/bulk/A'), qr{^HTTP/1.1 500 }, 'default changed');
$mock->script();

# nginx through the harness

my ($code, $h, $body) = $t->http_get('/hello');
is($code, 200, 'http_get status');
is($body, "hello\n", 'http_get body');

($code, $h, $body) = $t->http_post('/events/bulk/VIA-NGINX',
                                   '[{"kind":"g"}]');
is($code, 202, 'http_post through nginx to the mock');
is(($mock->posts)[-1]{headers}{'content-type'}, 'application/json',
   'headers recorded lower-cased');

is(scalar(my @w = $t->workers), 2, 'two workers');
ok($t->reload, 'reload');

$t->write_file_expand('bad.conf', "events {}\nhttp { foo_bar 1; }\n");
$t->conf_fails($t->read_file('bad.conf'), qr/unknown directive "foo_bar"/,
               'conf_fails sees the emerg line');

###############################################################################
