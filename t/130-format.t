#!/usr/bin/perl

# ldseg_format: "actions" (the default; Segment's LaunchDarkly (Actions)
# destination) and "classic" (Segment's classic LaunchDarkly destination:
# "userKey" instead of "contextKeys", metricValue from properties.value
# only).  Alias events are the same in both.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(13);
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

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id DEFAULT;
        }

        location /actions/v1/ {
            ldseg on;
            ldseg_format actions;
            ldseg_client_side_id ACTIONS;
        }

        location /classic/v1/ {
            ldseg on;
            ldseg_format classic;
            ldseg_client_side_id CLASSIC;
        }
    }
}
EOF

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2021-11-12T13:14:15.016Z';
my $MS = 1636722855016;

my @msgs = (
    [ track => { userId => 'u1', anonymousId => 'a1', event => 'Both',
                 timestamp => $TS,
                 properties => { revenue => 5, value => 3, k => 'v' } } ],
    [ track => { userId => 'u2', event => 'Revenue Only', timestamp => $TS,
                 properties => { revenue => 9 } } ],
    [ track => { anonymousId => 'a3', event => 'Anonymous', timestamp => $TS,
                 properties => { value => '4' } } ],
    [ alias => { userId => 'u4', previousId => 'p4', timestamp => $TS } ],
);

my $all = 1;
for my $prefix ('', '/actions', '/classic') {
    for my $m (@msgs) {
        my ($code) = $t->http_post("$prefix/v1/$m->[0]", $J->encode($m->[1]));
        $all = 0 unless $code == 200;
    }
}
ok($all, 'all messages accepted in every format');

is($mock->wait_events(12, 10), 12, 'twelve events');
select undef, undef, undef, 0.5;

sub ev {
    my ($id, $key) = @_;
    my @e = grep { $_->{key} eq $key } $mock->events(client_id => $id);
    return @e == 1 ? $e[0] : { count => scalar @e };
}

for my $id (qw(DEFAULT ACTIONS)) {
    is_deeply(ev($id, 'Both'), {
        kind => 'custom', key => 'Both',
        contextKeys => { user => 'u1', unauthenticatedUser => 'a1' },
        creationDate => $MS, metricValue => 5,
        data => { revenue => 5, value => 3, k => 'v' },
    }, "$id: track with revenue and value");

    is_deeply(ev($id, 'Revenue Only'), {
        kind => 'custom', key => 'Revenue Only',
        contextKeys => { user => 'u2' },
        creationDate => $MS, metricValue => 9, data => { revenue => 9 },
    }, "$id: track with revenue");

    is_deeply(ev($id, 'Anonymous'), {
        kind => 'custom', key => 'Anonymous',
        contextKeys => { user => 'a3', unauthenticatedUser => 'a3' },
        creationDate => $MS, metricValue => 4, data => { value => '4' },
    }, "$id: anonymous track");
}

is_deeply(ev('CLASSIC', 'Both'), {
    kind => 'custom', key => 'Both', userKey => 'u1',
    creationDate => $MS, metricValue => 3,
    data => { revenue => 5, value => 3, k => 'v' },
}, 'classic: track with revenue and value: metric from value');

is_deeply(ev('CLASSIC', 'Revenue Only'), {
    kind => 'custom', key => 'Revenue Only', userKey => 'u2',
    creationDate => $MS, data => { revenue => 9 },
}, 'classic: revenue alone gives no metric');

is_deeply(ev('CLASSIC', 'Anonymous'), {
    kind => 'custom', key => 'Anonymous', userKey => 'a3',
    creationDate => $MS, metricValue => 4, data => { value => '4' },
}, 'classic: anonymous track');

my $alias = {
    kind => 'alias', key => 'u4', previousKey => 'p4', contextKind => 'user',
    previousContextKind => 'anonymousUser', creationDate => $MS,
};
is_deeply([ map { ev($_, 'u4') } qw(DEFAULT ACTIONS CLASSIC) ],
          [ ($alias) x 3 ], 'alias is the same in every format');

my @mixed = grep { my $id = $_->{client_id};
                   grep { ($id eq 'CLASSIC') != exists $_->{userKey} }
                        grep { $_->{kind} eq 'custom' } @{ $_->{events} } }
            $mock->posts;
is(scalar @mixed, 0, 'classic events only in CLASSIC posts');

###############################################################################
