#!/usr/bin/perl

# gzip request bodies: a batch sent with "Content-Encoding: gzip" is
# accepted and delivered like a plain one; a body that expands more than
# 100 times (plus 16 KB) is refused with 400 "too_large" without queueing
# anything, so a few hundred bytes of gzip never cost a worker half a
# megabyte of parsing; a corrupt gzip body gets 400.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use IO::Compress::Gzip qw(gzip $GzipError);
use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(11);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id GZ;
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
my $TS = '2016-05-04T03:02:01.000Z';

sub post_gz {
    my ($body, $level) = @_;
    my $gz;
    gzip(\$body => \$gz, -Level => $level // 6) or die $GzipError;
    my ($code, $h, $raw) = $t->http_post('/v1/batch', $gz,
                                         'Content-Encoding' => 'gzip');
    return ($code, Test::Ldseg::json($raw), length $gz);
}

# an ordinary batch, gzipped

my @batch = map { { type => 'track', userId => "u$_", event => "gz-$_",
                    messageId => "m-$_", timestamp => $TS,
                    properties => { n => $_ } } } 1 .. 50;

my ($code, $j) = post_gz($J->encode({ batch => \@batch }));
is($code, 200, 'gzip batch: 200');
ok($j && $j->{success}, 'gzip batch: success');

$mock->wait_events(50, 10);
is(scalar(grep { ($_->{key} // '') =~ /^gz-/ } $mock->events), 50,
   'gzip batch: 50 events delivered');

# a body at gzip's maximum ratio: one message padded with 400 KB of spaces

my $pad = $J->encode({ batch => [ { type => 'track', userId => 'bomb',
                                    event => 'bomb', timestamp => $TS,
                                    properties => { p => ' ' x 30000 } } ] });
$pad =~ s/^\{/'{' . (' ' x 400000)/e;

my ($bcode, $bj, $wire) = post_gz($pad, 9);
note(sprintf 'bomb: %d bytes of gzip for %d bytes of JSON (%.0f:1)',
     $wire, length $pad, length($pad) / $wire);
cmp_ok(length($pad) / $wire, '>', 100, 'bomb: expands more than 100 times');
is($bcode, 400, 'bomb: 400');
is($bj && $bj->{code}, 'too_large', 'bomb: code too_large');
like($bj && $bj->{message}, qr/gzip/, 'bomb: the message says why');

# a message of random text, gzipped: accepted

my $text = join '', map { chr(97 + int rand 26) } 1 .. 30000;
my ($ocode) = post_gz($J->encode({ batch => [ { type => 'track',
    userId => 'ok', event => 'gz-ok', timestamp => $TS,
    properties => { p => $text } } ] }), 9);
is($ocode, 200, '30 KB message of random text gzipped: 200');

# corrupt gzip

my ($ccode) = $t->http_post('/v1/batch', "\x1f\x8b\x08\x00garbage",
                            'Content-Encoding' => 'gzip');
is($ccode, 400, 'corrupt gzip: 400');

my $s = $t->status;
is($s && $s->{rejected_reasons}{too_large}, 1,
   'status: the bomb counted as too_large');
Test::Ldseg::wait_for(sub { $s = $t->status; $s && $s->{queue}{events} == 0 },
                      10);
is(($s && $s->{delivered}) // 0, 51, 'only the accepted events delivered');

###############################################################################
