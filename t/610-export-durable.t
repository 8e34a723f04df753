#!/usr/bin/perl

# The export's Segment destinations keep their kind, URL and write key
# through everything the queue survives: a reload that resizes the zone
# (the queue is copied into the new zone) and kill -9 of every process with
# ldseg_spool (Segment records, magic LDS2, are replayed at the next start).
# While Segment answers 503 the SDK's requests still go on; once it is back
# every exported message arrives at /v1/batch, with Basic auth of its write
# key, under the messageIds of its SDK post, and none goes to LaunchDarkly's
# events endpoint.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::LdsegMock;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(14);
my $ld = $t->mock;

mkdir $t->testdir . '/segment';
my $seg = Test::LdsegMock->new(dir => $t->testdir . '/segment',
                               default => { status => 503 });

my $spool = $t->testdir . '/spool';
mkdir $spool or die "mkdir $spool: $!\n";

my $SEG = $seg->url;

my $CONF = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg ZONE;
    ldseg_flush_interval 100ms;
    ldseg_retry_max_delay 1s;
    ldseg_spool SPOOL delay=200ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location / {
            ldseg_export on;
            ldseg_export_url SEGMENT;
            ldseg_export_write_key wk-durable;
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

sub conf {
    my ($zone) = @_;
    (my $c = $CONF) =~ s/ZONE/$zone/;
    $c =~ s/SPOOL/$spool/;
    $c =~ s/SEGMENT/$SEG/;
    $t->write_file_expand('nginx.conf', $c);
}

conf('1m');
$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;

sub post {
    my ($pid, $n, $tag) = @_;
    my $body = '[' . join(',', map {
        qq({"kind":"custom","creationDate":1700000000000,"key":"$tag-$_",)
        . qq("context":{"kind":"user","key":"u-$tag"}})
    } 1 .. $n) . ']';
    my ($code) = $t->http_post('/bulk', $body, 'Authorization' => 'sdk-key',
                               'X-LaunchDarkly-Payload-ID' => $pid);
    return $code;
}

sub seg_posts {
    return grep { $_->{method} eq 'POST' } $seg->requests;
}

my $P1 = '11111111-0000-4000-8000-000000000001';
my $P2 = '22222222-0000-4000-8000-000000000002';

# queued while Segment fails, then the zone is resized

is(post($P1, 3, 'a'), 202, 'SDK request passed while Segment is down');
ok(Test::Ldseg::wait_for(sub { seg_posts() >= 1 }, 10),
   'Segment tried, and failed');

conf('2m');
ok($t->reload, 'reload with a resized zone');
like($t->read_file('error.log'), qr/resized: 3 queued events copied/,
     'the exports were copied to the new zone');

# more, then everything on disk, then kill -9

is(post($P2, 3, 'b'), 202, 'SDK request passed after the resize');

ok(Test::Ldseg::wait_for(sub {
    my $s = $t->status;
    $s && $s->{spool}{events} >= 6 }, 10), 'exports spooled');

my $records = '';
for my $f (glob "$spool/*.spool") {
    open my $fh, '<:raw', $f or next;
    local $/;
    $records .= <$fh>;
}
like($records, qr/LDS2/, 'Segment records in the spool');
unlike($records, qr/LDS1/, 'no LaunchDarkly record');

$t->kill_all;

# Segment back: the next start replays the spool

$seg->script(default => { status => 200 });
$t->run;

ok(Test::Ldseg::wait_for(sub {
    my %ids = map { $_->{messageId} => 1 }
              map { @{ ($J->decode($_->{body}) || {})->{batch} || [] } }
              grep { $_->{status} eq '200' } seg_posts();
    keys %ids >= 6 }, 15), 'every export delivered after the restart');

my @ok = grep { $_->{status} eq '200' } seg_posts();
my @msgs = map { @{ $J->decode($_->{body})->{batch} } } @ok;
my %ids = map { $_->{messageId} => 1 } @msgs;

is_deeply([ sort keys %ids ],
          [ (map { "$P1-$_" } 0 .. 2), (map { "$P2-$_" } 0 .. 2) ],
          'the messageIds of the SDK posts, each message at least once');
is_deeply([ sort map { $_->{properties}{key} } values %{ { map {
              $_->{messageId} => $_ } @msgs } } ],
          [ 'a-1', 'a-2', 'a-3', 'b-1', 'b-2', 'b-3' ],
          'the messages themselves');
is(scalar(grep { ($_->{headers}{authorization} // '')
                 ne Test::Ldseg::basic_auth('wk-durable') } seg_posts()),
   0, 'every POST with the write key\'s Basic auth');
is(scalar(grep { $_->{path} ne '/v1/batch' } seg_posts()), 0,
   'every POST to /v1/batch');
is(scalar(grep { $_->{path} =~ m{^/events/bulk/} } $ld->requests), 0,
   'nothing exported went to LaunchDarkly');

###############################################################################
