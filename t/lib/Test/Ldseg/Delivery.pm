package Test::Ldseg::Delivery;

# Delivery bookkeeping for the fault tests: what LaunchDarkly (the mock)
# keeps of the POSTs it got, judged the way LaunchDarkly judges them, and
# the one check of the delivery contract every fault test makes.
#
#     use Test::Ldseg::Delivery qw(post_events ld_tally wait_ld_delivered
#                                  delivered_ok same_id_same_body_ok);
#
#     my $sent = post_events($t, 'rf', 50);            # 50 track requests
#     my $r = wait_ld_delivered(mock => $t->mock, acked => $sent->{acked},
#                               match => qr/^rf-/, timeout => 20);
#     delivered_ok($r, 'after the failed reload');      # 3 tests
#     same_id_same_body_ok($r, 'retries');               # 1 test
#
# LaunchDarkly de-duplicates by X-LaunchDarkly-Payload-ID: of the 2xx POSTs
# carrying one ID only the first is kept, a later one is dropped whatever
# it holds.  So an ID given to two different sets of events loses the second
# set silently, and ld_tally() counts its events as missing unless another
# kept POST holds them.
#
# Core Perl only.

use strict;
use warnings;

use Exporter qw(import);
use JSON::PP;
use Test::More ();
use Time::HiRes qw(time sleep);

our @EXPORT_OK = qw(post_events ld_tally wait_ld_delivered delivered_ok
                    same_id_same_body_ok ld_figures explain_missing
                    DELIVERED_OK_TESTS);

# the number of tests delivered_ok() runs

use constant DELIVERED_OK_TESTS => 3;

my $TS = '2020-03-04T05:06:07.008Z';
my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}
              -[0-9a-f]{12}$/x;


# post_events($t, $prefix, $n, per_request => 1, pad => 0, path => ...)
# sends $n uniquely named "track" events ("$prefix-1" .. "$prefix-$n", the
# LaunchDarkly event key), per_request of them in one request (a /v1/batch
# when more than one), one request after the other.  pad adds a string
# property of that many bytes to each event.  Returns
#   { sent => [keys], acked => [keys of 2xx answers],
#     refused => [keys of 503s], codes => { status => requests } }

sub post_events {
    my ($t, $prefix, $n, %o) = @_;

    my $k = $o{per_request} || 1;
    my $path = $o{path} || ($k > 1 ? '/v1/batch' : '/v1/track');
    my $J = JSON::PP->new->utf8->canonical;
    my %r = (sent => [], acked => [], refused => [], codes => {});

    for (my $i = 1; $i <= $n; $i += $k) {
        my $last = $i + $k - 1 > $n ? $n : $i + $k - 1;
        my @keys = map { "$prefix-$_" } $i .. $last;
        my @msgs = map { {
            type => 'track', userId => "u-$_", event => $_,
            timestamp => $TS,
            properties => { $o{pad} ? (pad => 'p' x $o{pad}) : () },
        } } @keys;

        my $body = $path =~ m{/b(atch)?$}
            ? $J->encode({ batch => \@msgs }) : $J->encode($msgs[0]);

        my ($code) = $t->http_post($path, $body, -timeout => $o{timeout} || 10);
        $code ||= 0;

        $r{codes}{$code}++;
        push @{ $r{sent} }, @keys;
        push @{ $r{acked} }, @keys if $code =~ /^2/;
        push @{ $r{refused} }, @keys if $code == 503;
    }

    return \%r;
}


# ld_tally(mock => $mock, acked => [keys], maybe => [keys], match => qr//,
#          sent => N)
# Returns
#   sent, acked, posts (bulk POSTs), ids (distinct payload IDs), retries
#     (POSTs repeating an ID already seen), kept (2xx POSTs LaunchDarkly
#     keeps: the first 2xx of each ID), dedup_dropped (2xx POSTs it drops)
#   delivered: acked keys in a kept POST
#   missing [acked keys in no kept POST]
#   lost_by_dedup [of those, keys only in dropped 2xx POSTs]
#   unacked [keys in a 2xx POST, neither acked nor in maybe]
#   dup_other_id [keys in 2xx POSTs under more than one payload ID]
#   dup_same_post [keys twice in one POST]
#   conflicts [payload IDs whose POSTs do not all carry the same body
#     (compared byte for byte, after gunzip)]
#   bad_ids [POSTs without a version 4 UUID payload ID: "seq:id"]
#   maybe, maybe_delivered: as Test::Ldseg::tally

sub ld_tally {
    my (%o) = @_;

    my $mock = $o{mock};
    my $match = $o{match};
    my %acked = map { $_ => 1 } @{ $o{acked} || [] };
    my %maybe = map { $_ => 1 } @{ $o{maybe} || [] };

    my (%kept_n, %any2xx, %pids, %same_post, %body, %conflict, %seen_id,
        %kept_id);
    my ($posts, $retries, $kept, $dropped) = (0, 0, 0, 0);
    my @bad_ids;

    for my $p ($mock->posts) {
        $posts++;

        my $id = $p->{headers}{'x-launchdarkly-payload-id'} // '';
        push @bad_ids, "$p->{seq}:$id" if $id !~ $UUID;

        my $b = defined $p->{gzip_error} ? "gzip error $p->{seq}"
                                         : $p->{body} // '';
        if (exists $body{$id}) {
            $retries++;
            $conflict{$id} = 1 if $body{$id} ne $b;
        } else {
            $body{$id} = $b;
        }

        next unless $p->{status} =~ /^2\d\d$/;

        my $keep = !$kept_id{$id}++;
        $keep ? $kept++ : $dropped++;

        my %in;
        for my $e (@{ $p->{events} || [] }) {
            my $k = ref $e eq 'HASH' ? $e->{key} : undef;
            next unless defined $k;
            next if $match && $k !~ $match;
            $any2xx{$k}++;
            $kept_n{$k}++ if $keep;
            $pids{$k}{$id} = 1;
            $same_post{$k} = 1 if $in{$k}++;
        }
    }

    my @missing = sort grep { !$kept_n{$_} } keys %acked;

    return {
        sent          => $o{sent} // scalar(keys %acked),
        acked         => scalar(keys %acked),
        posts         => $posts,
        ids           => scalar(keys %body),
        retries       => $retries,
        kept          => $kept,
        dedup_dropped => $dropped,
        delivered     => scalar(grep { $kept_n{$_} } keys %acked),
        seen          => scalar(keys %any2xx),
        missing       => \@missing,
        lost_by_dedup => [ grep { $any2xx{$_} } @missing ],
        unacked       => [ sort grep { !$acked{$_} && !$maybe{$_} }
                                keys %any2xx ],
        dup_other_id  => [ sort grep { keys %{ $pids{$_} } > 1 } keys %pids ],
        dup_same_post => [ sort keys %same_post ],
        conflicts     => [ sort keys %conflict ],
        bad_ids       => \@bad_ids,
        maybe         => scalar(grep { !$acked{$_} } keys %maybe),
        maybe_delivered => scalar(grep { $maybe{$_} && !$acked{$_} }
                                  keys %any2xx),
    };
}


# wait_ld_delivered(%ld_tally_args, timeout => S): ld_tally() every 0.3 s
# until no acked key is missing or the time is up; returns the last tally

sub wait_ld_delivered {
    my (%o) = @_;

    my $deadline = time + (delete $o{timeout} // 30);
    my $r;
    while (1) {
        $r = ld_tally(%o);
        return $r if !@{ $r->{missing} } || time >= $deadline;
        sleep 0.3;
    }
}


# delivered_ok($r, $label): the delivery contract on an ld_tally() result,
# as DELIVERED_OK_TESTS (3) tests: every acked event kept by LaunchDarkly,
# nothing delivered that no client had an answer for, and no event
# delivered under two payload IDs (which LaunchDarkly would keep twice)

sub delivered_ok {
    my ($r, $label) = @_;

    my $ok = 1;

    my @m = @{ $r->{missing} };
    $ok &= Test::More::is(scalar @m, 0,
                          "$label: every acked event delivered")
        || Test::More::diag(scalar(@m) . " of $r->{acked} missing, e.g. "
            . join(' ', @m[0 .. ($#m < 9 ? $#m : 9)])
            . (@{ $r->{lost_by_dedup} }
               ? '; ' . scalar(@{ $r->{lost_by_dedup} })
                 . ' of them only in POSTs that repeat the payload ID of'
                 . ' another payload (LaunchDarkly drops those)'
               : ''));

    my @u = @{ $r->{unacked} };
    $ok &= Test::More::is(scalar @u, 0,
                          "$label: nothing delivered that was not acked")
        || Test::More::diag("unacked: @u[0 .. ($#u < 9 ? $#u : 9)]");

    my @d = @{ $r->{dup_other_id} };
    $ok &= Test::More::is(scalar @d, 0,
                          "$label: no event delivered under two payload IDs")
        || Test::More::diag("e.g. @d[0 .. ($#d < 9 ? $#d : 9)]");

    return $ok;
}


# same_id_same_body_ok($r, $label): one test; every POST carrying one
# payload ID carries the same body, byte for byte

sub same_id_same_body_ok {
    my ($r, $label) = @_;

    my @c = @{ $r->{conflicts} };
    return Test::More::is(scalar @c, 0,
        "$label: each payload ID always carries the same events")
        || Test::More::diag(scalar(@c) . " of $r->{ids} payload IDs used for"
            . " different bodies, e.g. @c[0 .. ($#c < 4 ? $#c : 4)]");
}


# one line of figures for diag()

sub ld_figures {
    my ($name, $r) = @_;

    my $s = sprintf '%s: acked=%d delivered=%d posts=%d payload_ids=%d'
        . ' retries=%d kept=%d dropped_as_duplicate=%d', $name, $r->{acked},
        $r->{delivered}, $r->{posts}, $r->{ids}, $r->{retries}, $r->{kept},
        $r->{dedup_dropped};
    $s .= sprintf ' ID-CONFLICTS=%d', scalar @{ $r->{conflicts} }
        if @{ $r->{conflicts} };
    $s .= sprintf ' MISSING=%d', scalar @{ $r->{missing} }
        if @{ $r->{missing} };
    $s .= sprintf ' (lost to payload-ID reuse: %d)',
        scalar @{ $r->{lost_by_dedup} } if @{ $r->{lost_by_dedup} };
    $s .= sprintf ' UNACKED=%d', scalar @{ $r->{unacked} }
        if @{ $r->{unacked} };
    $s .= sprintf ' DUP-OTHER-ID=%d', scalar @{ $r->{dup_other_id} }
        if @{ $r->{dup_other_id} };
    $s .= sprintf ' noanswer=%d (of which delivered %d)', $r->{maybe},
        $r->{maybe_delivered} if $r->{maybe};

    return $s;
}


# explain_missing($r, $res, @marks): for diag(), when and by which worker
# each missing event was acked, relative to the nearest of the marks
# ({ name, hup, done, old => [pids], new => [pids] }, as reload_then()
# returns them plus a name); $res is a Test::Ldseg load's results (the
# configuration adds "add_header X-Pid $pid always;")

sub explain_missing {
    my ($r, $res, @marks) = @_;

    my $out = '';
    for my $m (@marks) {
        $out .= sprintf "  %s: HUP at %.3f, done at +%.3f, old workers %s,"
            . " new workers %s\n", $m->{name}, $m->{hup},
            $m->{done} - $m->{hup}, "@{ $m->{old} || [] }",
            "@{ $m->{new} || [] }";
    }

    my @m = grep { $res->{info}{$_} } @{ $r->{missing} };
    @m = sort { $res->{info}{$a}{time} <=> $res->{info}{$b}{time} } @m;
    splice @m, 20 if @m > 20;

    for my $id (@m) {
        my $i = $res->{info}{$id};
        my ($near) = sort { abs($i->{time} - $a->{hup})
                            <=> abs($i->{time} - $b->{hup}) } @marks;
        if (!$near) {
            $out .= sprintf "  %s acked at %.3f by worker %s\n", $id,
                $i->{time}, $i->{pid};
            next;
        }
        my $gen = grep({ $_ == $i->{pid} } @{ $near->{old} || [] }) ? 'an OLD'
                : grep({ $_ == $i->{pid} } @{ $near->{new} || [] }) ? 'a new'
                : 'another';
        $out .= sprintf "  %s acked at %s%+.3f s by %s worker %s\n", $id,
            $near->{name}, $i->{time} - $near->{hup}, $gen, $i->{pid};
    }

    return $out;
}


1;
