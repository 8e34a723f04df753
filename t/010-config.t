#!/usr/bin/perl

# Configuration: every ldseg directive, valid and invalid, at every level.
# "nginx -t" must accept the valid configurations and refuse the invalid
# ones with an [emerg] line that names the directive.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

###############################################################################

my $t = Test::Ldseg->new()->plan(137);

# a configuration with placeholders for each level

sub conf {
    my (%c) = @_;

    my $zone = exists $c{zone} ? $c{zone} : 'ldseg_zone ldseg 1m;';
    my $http = $c{http} // '';
    my $server = $c{server} // '';
    my $loc = exists $c{loc} ? $c{loc} : 'ldseg on;';
    my $extra = $c{extra} // '';
    my $id = exists $c{id} ? $c{id} : 'ldseg_client_side_id cfg-test;';

    return <<"EOF";
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    $zone
    $id
    $http

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        $server

        location /v1/ {
            $loc
        }

        $extra
    }
}
EOF
}

sub fails {
    my ($re, $name, %c) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $t->conf_fails(conf(%c), $re, $name);
}

sub valid {
    my ($name, %c) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $t->conf_ok(conf(%c), $name);
}

###############################################################################

# everything at once, at every level it is allowed

valid('all directives', id => '',
    http => <<'EOF',
    ldseg_client_side_id http-level-id;
    ldseg_events_url http://127.0.0.1:9;
    ldseg_flush_interval 250ms;
    ldseg_batch_size 50;

    map $ldseg_write_key $ld_id {
        default      default-id;
        key-a        id-a;
    }
EOF
    server => <<'EOF',
    ldseg_client_side_id server_level_ID_1;
    ldseg_events_url https://events.example.com:8443;
EOF
    loc => <<'EOF',
    ldseg on;
    ldseg_format classic;
    ldseg_pass @up;
    ldseg_client_side_id $ld_id;
    ldseg_events_url http://localhost;
EOF
    extra => <<'EOF');
    location @up {
        return 204;
    }

    location /status {
        ldseg_status;
    }

    location /off {
        ldseg off;
        ldseg_format actions;
    }
EOF

valid('defaults only');
valid('ldseg off without a zone', zone => '', loc => 'ldseg off;');
valid('ldseg_format actions', loc => 'ldseg on; ldseg_format actions;');
valid('ldseg_flush_interval 2s', http => 'ldseg_flush_interval 2s;');
valid('ldseg_batch_size 1', http => 'ldseg_batch_size 1;');
valid('events url https without port',
      http => 'ldseg_events_url https://events.launchdarkly.com;');
valid('events url http with port',
      server => 'ldseg_events_url http://127.0.0.1:8081;');
valid('client side id with - and _',
      server => 'ldseg_client_side_id 5f3a-B_9;');
valid('$ldseg_write_key in a map and in a variable id',
      http => 'map $ldseg_write_key $id { default x; }',
      loc => 'ldseg on; ldseg_client_side_id $id;');
valid('ldseg_status alone', extra => 'location /s { ldseg_status; }');

# ldseg_zone

fails(qr/ldseg_zone/, 'zone too small', zone => 'ldseg_zone z 16k;');
fails(qr/ldseg_zone/, 'zone size not a size', zone => 'ldseg_zone z big;');
fails(qr/ldseg_zone/, 'zone without size', zone => 'ldseg_zone z;');
fails(qr/ldseg_zone.*is duplicate|is duplicate.*ldseg_zone/,
      'same zone twice', zone => 'ldseg_zone z 1m; ldseg_zone z 1m;');
fails(qr/ldseg_zone/, 'a second zone',
      zone => 'ldseg_zone z 1m; ldseg_zone y 1m;');
fails(qr/"ldseg_zone" directive is not allowed here/, 'zone in server',
      server => 'ldseg_zone z2 1m;');
fails(qr/ldseg_zone|"ldseg"/, 'ldseg on without a zone', zone => '');

# ldseg

fails(qr/"ldseg"/, 'ldseg maybe', loc => 'ldseg maybe;');
fails(qr/"ldseg"/, 'ldseg without argument', loc => 'ldseg;');
fails(qr/"ldseg" directive is not allowed here/, 'ldseg in server',
      server => 'ldseg on;');
fails(qr/"ldseg" directive is not allowed here/, 'ldseg in http',
      http => 'ldseg on;');

# ldseg_client_side_id

fails(qr/ldseg_client_side_id/, 'client side id with a space',
      server => 'ldseg_client_side_id "a b";');
fails(qr/ldseg_client_side_id/, 'client side id with a slash',
      server => 'ldseg_client_side_id a/b;');
fails(qr/ldseg_client_side_id/, 'client side id with a dot', id => '',
      http => 'ldseg_client_side_id a.b;');
fails(qr/ldseg_client_side_id/, 'empty client side id',
      loc => 'ldseg on; ldseg_client_side_id "";');
fails(qr/ldseg_client_side_id/, 'client side id with two arguments',
      server => 'ldseg_client_side_id a b;');

# ldseg_events_url

fails(qr/ldseg_events_url/, 'events url with a path',
      http => 'ldseg_events_url http://127.0.0.1:9/events;');
fails(qr/ldseg_events_url/, 'events url with a query',
      http => 'ldseg_events_url http://127.0.0.1:9?x=1;');
fails(qr/ldseg_events_url/, 'events url ftp',
      server => 'ldseg_events_url ftp://127.0.0.1;');
fails(qr/ldseg_events_url/, 'events url without scheme',
      server => 'ldseg_events_url events.launchdarkly.com;');
fails(qr/ldseg_events_url/, 'events url without host',
      loc => 'ldseg on; ldseg_events_url http://;');
fails(qr/ldseg_events_url/, 'events url with a bad port',
      loc => 'ldseg on; ldseg_events_url http://127.0.0.1:99999;');
fails(qr/"ldseg_events_url" "http:\/\/127.0.0.1:": invalid port/,
      'events url with an empty port',
      loc => 'ldseg on; ldseg_events_url http://127.0.0.1:;');
fails(qr/"ldseg_events_url" .*: invalid port/, 'events url with port 0',
      loc => 'ldseg on; ldseg_events_url http://127.0.0.1:0;');
fails(qr/"ldseg_events_url" .*: no host/, 'events url with a port only',
      http => 'ldseg_events_url https://:8443;');
fails(qr/"ldseg_events_url" .*: invalid host/, 'events url with user info',
      http => 'ldseg_events_url http://user@127.0.0.1:9;');
fails(qr/"ldseg_events_url" .*: invalid host/, 'events url with a fragment',
      http => 'ldseg_events_url http://127.0.0.1#x;');
fails(qr/"ldseg_events_url" .*: a path, query or fragment is not allowed/,
      'events url with a path after a slash',
      http => 'ldseg_events_url http://127.0.0.1:9//;');
fails(qr/"ldseg_events_url" .*: expected http\(s\):\/\/host\[:port\]/,
      'events url with another scheme', http => 'ldseg_events_url ws://a;');
valid('events url with a trailing slash',
      http => 'ldseg_events_url http://127.0.0.1:8081/;');
valid('events url with an IPv6 address',
      http => 'ldseg_events_url http://[::1]:8081;');
valid('events url with an upper-case scheme',
      http => 'ldseg_events_url HTTPS://events.launchdarkly.com;');

# ldseg_flush_interval

fails(qr/ldseg_flush_interval/, 'flush interval not a time',
      http => 'ldseg_flush_interval soon;');
fails(qr/"ldseg_flush_interval" directive is not allowed here/,
      'flush interval in server', server => 'ldseg_flush_interval 1s;');
fails(qr/"ldseg_flush_interval" directive is not allowed here/,
      'flush interval in location',
      loc => 'ldseg on; ldseg_flush_interval 1s;');

# ldseg_batch_size

fails(qr/ldseg_batch_size/, 'batch size 0', http => 'ldseg_batch_size 0;');
fails(qr/ldseg_batch_size/, 'batch size not a number',
      http => 'ldseg_batch_size many;');
fails(qr/ldseg_batch_size/, 'batch size negative',
      http => 'ldseg_batch_size -5;');
fails(qr/"ldseg_batch_size" directive is not allowed here/,
      'batch size in location', loc => 'ldseg on; ldseg_batch_size 5;');

# ldseg_format

fails(qr/ldseg_format/, 'format fancy',
      loc => 'ldseg on; ldseg_format fancy;');
fails(qr/"ldseg_format" directive is not allowed here/, 'format in http',
      http => 'ldseg_format classic;');

# ldseg_pass

fails(qr/ldseg_pass/, 'pass without @', loc => 'ldseg on; ldseg_pass up;',
      extra => 'location @up { return 204; }');
fails(qr/ldseg_pass/, 'pass without argument', loc => 'ldseg on; ldseg_pass;');
fails(qr/"ldseg_pass" directive is not allowed here/, 'pass in server',
      server => 'ldseg_pass @up;',
      extra => 'location @up { return 204; }');

# ldseg_deliver

my $LDLOC = 'location = /ld { internal; '
    . 'proxy_pass http://127.0.0.1:9$ldseg_events_path; }';

valid('deliver through a location', loc => 'ldseg on; ldseg_deliver /ld;',
      extra => $LDLOC);
valid('deliver queue', loc => 'ldseg on; ldseg_deliver queue;');
valid('deliver with ldseg_pass',
      loc => 'ldseg on; ldseg_deliver /ld; ldseg_pass @up;',
      extra => "$LDLOC location \@up { return 204; }");
fails(qr/invalid "ldseg_deliver" "ld".*starting with "\/"/,
      'deliver without /', loc => 'ldseg on; ldseg_deliver ld;');
fails(qr/invalid "ldseg_deliver" "\@ld".*named location/,
      'deliver to a named location', loc => 'ldseg on; ldseg_deliver @ld;',
      extra => 'location @ld { return 202; }');
fails(qr/invalid "ldseg_deliver" "\/ld\?a=1".*arguments/,
      'deliver with arguments', loc => 'ldseg on; ldseg_deliver /ld?a=1;');
fails(qr/invalid "ldseg_deliver" "\/\$uri".*variables/,
      'deliver with a variable', loc => 'ldseg on; ldseg_deliver /$uri;');
fails(qr/"ldseg_deliver" directive is duplicate/, 'deliver twice',
      loc => 'ldseg on; ldseg_deliver /ld; ldseg_deliver queue;');
fails(qr/"ldseg_deliver" directive is not allowed here/, 'deliver in server',
      server => 'ldseg_deliver /ld;');
fails(qr/invalid number of arguments in "ldseg_deliver"/,
      'deliver without argument', loc => 'ldseg on; ldseg_deliver;');

# ldseg_status

fails(qr/"ldseg_status"/, 'status with an argument',
      extra => 'location /s { ldseg_status on; }');
fails(qr/"ldseg_status" directive is not allowed here/, 'status in server',
      server => 'ldseg_status;');

# $ldseg_write_key is a real variable; a misspelt one is not

fails(qr/ldseg_writekey/, 'unknown variable',
      http => 'map $ldseg_writekey $id { default x; }',
      loc => 'ldseg on; ldseg_client_side_id $id;');

# the queue's bounds, the dead letter and the spool's thread pool

my $td = $t->testdir;

valid('max destinations, dead letter, spool thread pool',
      http => "ldseg_max_destinations 10; ldseg_dead_letter $td/dead.jsonl; "
              . "ldseg_dead_letter_after 3; "
              . "ldseg_spool $td thread_pool=default;");
fails(qr/"ldseg_max_destinations"/, 'max destinations 0',
      http => 'ldseg_max_destinations 0;');
fails(qr/"ldseg_dead_letter" directory ".*nowhere\/" does not exist/,
      'dead letter in a missing directory',
      http => "ldseg_dead_letter $td/nowhere/dead.jsonl;");
fails(qr/"ldseg_dead_letter_after"/, 'dead letter after 0',
      http => 'ldseg_dead_letter_after 0;');
fails(qr/thread_pool/, 'spool with an empty thread pool name',
      http => "ldseg_spool $td thread_pool=;");
fails(qr/thread pool "nopool" not found|unknown thread pool "nopool"/,
      'spool with an undeclared thread pool',
      http => "ldseg_spool $td thread_pool=nopool;");
fails(qr/"ldseg_client_side_id" is longer than 256/,
      'client-side ID too long', id => 'ldseg_client_side_id ' . ('a' x 257)
      . ';');
fails(qr/ldseg_events_url/, 'events URL too long',
      http => 'ldseg_events_url http://' . ('a' x 1100) . '.example;');

# ldseg_dedupe and ldseg_clock_skew

valid('dedupe with a window, clock skew at every level',
      http => 'ldseg_dedupe zone=dd:1m window=1h; ldseg_clock_skew on;',
      server => 'ldseg_clock_skew off;',
      loc => 'ldseg on; ldseg_clock_skew on;');
valid('dedupe with the default window', http => 'ldseg_dedupe zone=dd:64k;');
fails(qr/"ldseg_dedupe" needs zone=name:size/, 'dedupe without a zone',
      http => 'ldseg_dedupe window=1h;');
fails(qr/invalid "ldseg_dedupe" zone size in "zone=dd"/,
      'dedupe zone without a size', http => 'ldseg_dedupe zone=dd;');
fails(qr/invalid "ldseg_dedupe" zone "zone=dd:big"/,
      'dedupe zone size not a size', http => 'ldseg_dedupe zone=dd:big;');
fails(qr/ldseg_dedupe zone "dd" is too small/, 'dedupe zone too small',
      http => 'ldseg_dedupe zone=dd:16k;');
fails(qr/invalid "ldseg_dedupe" window "window=soon"/,
      'dedupe window not a time',
      http => 'ldseg_dedupe zone=dd:1m window=soon;');
fails(qr/invalid "ldseg_dedupe" window "window=0s"/, 'dedupe window 0',
      http => 'ldseg_dedupe zone=dd:1m window=0s;');
fails(qr/invalid "ldseg_dedupe" parameter "size=1m"/,
      'dedupe unknown parameter', http => 'ldseg_dedupe zone=dd:1m size=1m;');
fails(qr/"ldseg_dedupe" directive is duplicate/, 'dedupe twice',
      http => 'ldseg_dedupe zone=a:1m; ldseg_dedupe zone=b:1m;');
fails(qr/"ldseg_dedupe" directive is not allowed here/, 'dedupe in server',
      server => 'ldseg_dedupe zone=dd:1m;');
fails(qr/shared memory zone "ldseg" is already declared for a different use/,
      'dedupe zone named as the ldseg_zone',
      http => 'ldseg_dedupe zone=ldseg:1m;');
fails(qr/"ldseg_clock_skew"/, 'clock skew maybe',
      loc => 'ldseg on; ldseg_clock_skew maybe;');

# ldseg_export and its directives

my $X = 'ldseg_export on; ldseg_pass @ld;';
my $LD = 'location @ld { return 202; }';

valid('ldseg_export, every directive at every level', id => '',
    http => <<'EOF',
    ldseg_export_url http://127.0.0.1:9;
    ldseg_export_write_key $http_x_key;
    ldseg_export_project default;
    ldseg_export_label click "Goal Clicked";
EOF
    server => <<'EOF',
    ldseg_export_url https://api.segment.io/;
    ldseg_export_environment $http_x_env;
EOF
    loc => <<'EOF',
    ldseg_export on;
    ldseg_export_write_key wk-Literal_1.2;
    ldseg_export_environment 5f0123456789abcdef012345;
    ldseg_export_project "my project";
    ldseg_export_label feature "Feature Evaluated";
    ldseg_export_label custom custom;
    ldseg_pass @ld;
EOF
    extra => $LD);
valid('ldseg_export off without anything', zone => '', id => '',
      loc => 'ldseg_export off;');
fails(qr/"ldseg_export" requires "ldseg_export_write_key"/,
      'export without a write key', loc => $X, extra => $LD);
fails(qr/"ldseg_export" requires "ldseg_pass"/, 'export without ldseg_pass',
      loc => 'ldseg_export on; ldseg_export_write_key wk;');
fails(qr/"ldseg_export" and "ldseg" cannot be in the same location/,
      'export and ldseg together',
      loc => "ldseg on; $X ldseg_export_write_key wk;", extra => $LD);
fails(qr/require "ldseg_zone"/, 'export without a zone', zone => '',
      loc => "$X ldseg_export_write_key wk;", extra => $LD);
fails(qr/"ldseg_export" directive is not allowed here/, 'export in server',
      server => 'ldseg_export on;');
fails(qr/invalid value "maybe" in "ldseg_export"|"ldseg_export".*"maybe"/,
      'export maybe', loc => 'ldseg_export maybe;');
fails(qr/invalid "ldseg_export_write_key" "a:b"/, 'write key with ":"',
      loc => "$X ldseg_export_write_key a:b;", extra => $LD);
fails(qr/invalid "ldseg_export_write_key"/, 'write key too long',
      loc => "$X ldseg_export_write_key " . ('k' x 256) . ';', extra => $LD);
fails(qr/"ldseg_export_write_key" directive is duplicate/,
      'write key twice',
      loc => "$X ldseg_export_write_key a; ldseg_export_write_key b;",
      extra => $LD);
fails(qr/invalid "ldseg_export_url" "ftp:\/\/x": expected http/,
      'export url ftp', http => 'ldseg_export_url ftp://x;');
fails(qr/invalid "ldseg_export_url" .*a path, query or fragment/,
      'export url with a path',
      http => 'ldseg_export_url https://api.segment.io/v1;');
fails(qr/"ldseg_export_url" directive is duplicate/, 'export url twice',
      http => 'ldseg_export_url http://a; ldseg_export_url http://b;');
fails(qr/invalid "ldseg_export_label" kind "identify"/, 'label of identify',
      http => 'ldseg_export_label identify x;');
fails(qr/invalid "ldseg_export_label" name ""/, 'empty label',
      http => 'ldseg_export_label feature "";');
fails(qr/"ldseg_export_label" directive is duplicate/, 'label twice',
      http => 'ldseg_export_label feature a; ldseg_export_label feature b;');
fails(qr/invalid number of arguments in "ldseg_export_label"/,
      'label without name', http => 'ldseg_export_label feature;');
fails(qr/"ldseg_export_environment" directive is duplicate/,
      'environment twice', http => 'ldseg_export_environment a; '
      . 'ldseg_export_environment b;');
fails(qr/"ldseg_export_project" directive is duplicate/, 'project twice',
      http => 'ldseg_export_project a; ldseg_export_project b;');

# unknown directive in the ldseg_ namespace

# ldseg_alert

valid('alert', http => 'ldseg_alert delivery_rate=0.95 window=5m max_age=2m;');
valid('alert with the default window', http => 'ldseg_alert delivery_rate=1;');
fails(qr/"ldseg_alert" "delivery_rate=1\.5", the delivery rate must be/,
      'alert rate over 1', http => 'ldseg_alert delivery_rate=1.5;');
fails(qr/"ldseg_alert" "delivery_rate=0", the delivery rate must be/,
      'alert rate 0', http => 'ldseg_alert delivery_rate=0;');
fails(qr/"ldseg_alert" "delivery_rate=0\.00001"/, 'alert rate too fine',
      http => 'ldseg_alert delivery_rate=0.00001;');
fails(qr/"ldseg_alert" time "window=5x"/, 'alert window unparsable',
      http => 'ldseg_alert delivery_rate=0.9 window=5x;');
fails(qr/"ldseg_alert" time "max_age=500ms", it must be 1s or more/,
      'alert max_age under 1s',
      http => 'ldseg_alert delivery_rate=0.9 max_age=500ms;');
fails(qr/"ldseg_alert" requires delivery_rate=/, 'alert without a rate',
      http => 'ldseg_alert window=5m;');
fails(qr/invalid "ldseg_alert" parameter "rate=0\.9"/,
      'alert unknown parameter', http => 'ldseg_alert rate=0.9;');
fails(qr/"ldseg_alert" directive is duplicate/, 'alert twice',
      http => 'ldseg_alert delivery_rate=0.9; ldseg_alert delivery_rate=0.8;');
fails(qr/"ldseg_alert" requires "ldseg_zone"/, 'alert without a zone',
      zone => '', loc => '', http => 'ldseg_alert delivery_rate=0.9;');
fails(qr/"ldseg_alert" directive is not allowed here/, 'alert in a location',
      loc => 'ldseg on; ldseg_alert delivery_rate=0.9;');

# ldseg_recent

valid('recent', http => 'ldseg_recent 100;');
valid('recent off', http => 'ldseg_recent off;');
fails(qr/invalid "ldseg_recent" "0", it must be "off" or a number from 1 to/,
      'recent 0', http => 'ldseg_recent 0;');
fails(qr/invalid "ldseg_recent" "1001"/, 'recent over 1000',
      http => 'ldseg_recent 1001;');
fails(qr/"ldseg_recent" 1000 needs \d+ bytes, more than a quarter of/,
      'recent too large for the zone', zone => 'ldseg_zone ldseg 512k;',
      http => 'ldseg_recent 1000;');
fails(qr/"ldseg_recent" requires "ldseg_zone"/, 'recent without a zone',
      zone => '', loc => '', http => 'ldseg_recent 10;');

# ldseg_tap

valid('tap', http => "ldseg_tap $td/tap.ndjson max_size=10m;");
fails(qr/"ldseg_tap" directory "\/nonexistent\/" does not exist/,
      'tap in a missing directory', http => 'ldseg_tap /nonexistent/tap;');
fails(qr/invalid "ldseg_tap" max_size "1k", it must be a size of 4k or more/,
      'tap max_size too small', http => "ldseg_tap $td/tap max_size=1k;");
fails(qr/invalid "ldseg_tap" parameter "size=1m"/, 'tap unknown parameter',
      http => "ldseg_tap $td/tap size=1m;");

fails(qr/unknown directive "ldseg_bogus"/, 'unknown ldseg directive',
      http => 'ldseg_bogus 1;');

###############################################################################

# the valid configuration actually starts, with 2 workers, and answers

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
    ldseg_batch_size 5;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id cfg-run;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

$t->conf_ok('nginx.conf is valid');
$t->run;

my ($code, undef, $body) = $t->http_post('/v1/track',
    '{"userId":"u1","event":"Config Run"}');
is($code, 200, 'configured server accepts a track');
is($t->mock->wait_events(1, 10), 1, 'and delivers it');

my ($scode, $sh, $sbody) = $t->http_get('/status');
is($scode, 200, 'status location');
like($sh->{'content-type'} // '', qr{^application/json}, 'status is json');

###############################################################################
