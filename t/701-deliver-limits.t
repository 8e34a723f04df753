#!/usr/bin/perl

# ldseg_deliver at its bounds: a batch that becomes more subrequests than
# run at once (ldseg_batch_size 1: 300 subrequests, 32 at a time) is
# delivered whole; a reload while subrequests are in flight still answers
# the client from the old worker; clients that go away while subrequests
# wait leave nothing behind (the teardown checks for alerts and, under
# ASan, leaks and errors); 2 workers.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use Time::HiRes qw(sleep time);

###############################################################################

my $t = Test::Ldseg->new()->plan(9);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_batch_size 1;

    upstream ld {
        server 127.0.0.1:%%MOCK_PORT%%;
        keepalive 16;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id WAVE-ID;
            ldseg_deliver /ld;
        }

        location = /ld {
            internal;
            proxy_pass http://ld$ldseg_events_path;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 5s;
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

sub batch {
    my ($from, $to) = @_;
    return $J->encode({ batch => [ map {
        { type => 'track', userId => "u-$_", event => "E-$_",
          messageId => "m-$_" }
    } $from .. $to ] });
}

# a request sent now, its answer read later

sub send_request {
    my ($path, $body) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port(8080))
        or return;
    print $s "POST $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    return $s;
}

sub read_status {
    my ($s, $timeout) = @_;
    my $sel = IO::Select->new($s);
    my $in = '';
    my $deadline = time + $timeout;
    while (time < $deadline && $sel->can_read($deadline - time)) {
        my $n = sysread $s, $in, 65536, length $in;
        last unless $n;
    }
    return $in =~ m{^HTTP/1\.\d (\d+)} ? $1 : 0;
}

# 300 events, one per subrequest: more than run at once

my ($code) = $t->http_post('/v1/batch', batch(1, 300), -timeout => 60);
is($code, 200, '300 subrequests: accepted');

my %seen;
$seen{ $_->{key} }++ for $mock->events(client_id => 'WAVE-ID');
is(scalar(grep { ($seen{"E-$_"} // 0) != 1 } 1 .. 300), 0,
   'every event delivered once');

# LaunchDarkly slow; a reload while the subrequests wait

$mock->script(default => { status => 202, delay => 2 });

my $s = send_request('/v1/batch', batch(1001, 1005));
sleep 0.5;
ok($t->reload, 'reloaded while subrequests are in flight');
is(read_status($s, 15), 200, 'the old worker answers its client');

# clients that go away while their subrequests wait

my @gone = map { send_request('/v1/batch', batch(2000 + $_ * 10,
                                                   2009 + $_ * 10)) } 0 .. 4;
sleep 0.5;
close $_ for grep { defined } @gone;
sleep 3;

$mock->script(default => { status => 202 });

($code) = $t->http_post('/v1/track',
    $J->encode({ userId => 'u', event => 'after' }));
is($code, 200, 'served on after clients went away');

my (undef, undef, $sb) = $t->http_get('/status');
my $st = eval { $J->decode($sb) } || {};
my ($d) = grep { $_->{client_side_id} eq 'WAVE-ID' }
          @{ $st->{destinations} || [] };

is($st->{subrequests}{sent},
   $st->{subrequests}{accepted} + $st->{subrequests}{failed},
   'sent = accepted + failed');
is($d->{subrequests_failed}, 50,
   'the subrequests of the requests gone count as failed');
is($st->{rejected_reasons}{upstream_failed}, 50,
   'their messages count as rejected upstream_failed');
%seen = ();
$seen{ $_->{key} }++ for $mock->events(client_id => 'WAVE-ID');
is(join(',', grep { ($seen{"E-$_"} // 0) != 1 } 1001 .. 1005), '',
   'the events of the request across the reload delivered once');

###############################################################################
