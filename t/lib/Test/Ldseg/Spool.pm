package Test::Ldseg::Spool;

# Helpers for the spool tests (t/445-t/448): the files of a spool
# directory and their records (the format documented at the top of
# src/ngx_http_ldseg_spool.c), batches of uniquely named events, the spool
# counters of the status JSON, and a start of nginx bounded in time that
# kills what it started when the start hangs.
#
#     use Test::Ldseg::Spool qw(spool_files spool_records live_keys
#                               send_keys wait_spooled start_bounded);
#
# Core Perl only.

use strict;
use warnings;

use Exporter qw(import);
use JSON::PP;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

use Test::Ldseg;

our @EXPORT_OK = qw(spool_files spool_records live_keys send_keys
                    wait_spooled start_bounded file_mode);

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2021-04-05T06:07:08.009Z';


# names of the regular, non-empty "ldseg-NNNNNNNN.spool" files in $dir

sub spool_files {
    my ($dir) = @_;

    opendir my $dh, $dir or return ();
    my @f = sort grep { /^ldseg-\d{8}\.spool$/ && -f "$dir/$_" && -s _ }
            readdir $dh;
    closedir $dh;

    return @f;
}


# the records of one spool file, up to the first one that does not parse:
# { off, len, done (magic "LDS0"), nevents, id (hex), url, keys => [event
# keys] }

sub spool_records {
    my ($dir, $file) = @_;

    open my $fh, '<:raw', "$dir/$file" or return ();
    local $/;
    my $d = <$fh> // '';
    close $fh;

    my ($off, @r) = (0);

    while ($off + 36 <= length $d) {
        my $magic = substr $d, $off, 4;
        last unless $magic eq 'LDS1' || $magic eq 'LDS0';

        my ($len, $nev) = unpack 'VV', substr $d, $off + 8, 8;
        my $ulen = unpack 'v', substr $d, $off + 32, 2;
        last if $len < 36 + $ulen + 2 || $off + $len > length $d;

        my $url = substr $d, $off + 36, $ulen;
        my $body = substr $d, $off + 36 + $ulen, $len - 36 - $ulen;
        my $ev = eval { $J->decode($body) };
        my @keys = ref $ev eq 'ARRAY'
            ? map { ref $_ eq 'HASH' && defined $_->{key} ? $_->{key} : () }
              @$ev
            : ();

        push @r, {
            off     => $off,
            len     => $len,
            done    => $magic eq 'LDS0' ? 1 : 0,
            nevents => $nev,
            id      => unpack('H*', substr $d, $off + 16, 16),
            url     => $url,
            keys    => \@keys,
        };

        $off += $len;
    }

    return @r;
}


# event keys (matching $match) in records not marked done, in every spool
# file of $dir: { key => file }

sub live_keys {
    my ($dir, $match) = @_;

    my %k;
    for my $f (spool_files($dir)) {
        for my $r (grep { !$_->{done} } spool_records($dir, $f)) {
            $k{$_} //= $f for grep { !$match || $_ =~ $match }
                               @{ $r->{keys} };
        }
    }

    return \%k;
}


# send_keys($t, [keys], pad => N, id => client-side ID, path => ...):
# one /v1/batch request with a track event per key; returns the status

sub send_keys {
    my ($t, $keys, %o) = @_;

    my $path = $o{path} || '/v1/batch';
    my $body = $J->encode({ batch => [ map { {
        type => 'track', userId => "u-$_", event => $_, timestamp => $TS,
        properties => { $o{pad} ? (pad => 'x' x $o{pad}) : () },
    } } @$keys ] });

    my ($code) = $t->http_post($path, $body, -timeout => $o{timeout} || 10);

    return $code || 0;
}


# waits until every queued event has a copy in the spool (status
# spool.events == queue.events > 0); returns the last status

sub wait_spooled {
    my ($t, $timeout) = @_;

    my $s;
    Test::Ldseg::wait_for(sub {
        $s = $t->status;
        $s && $s->{queue}{events} > 0
           && $s->{spool}{events} >= $s->{queue}{events};
    }, $timeout // 10);

    return $s;
}


# start_bounded($t, $timeout): starts nginx like $t->run, but gives up after
# $timeout seconds (a start-up that hangs): the master it started is killed
# by its pid.  Returns (1, seconds) when nginx runs and listens, else (0,
# seconds, why).

sub start_bounded {
    my ($t, $timeout) = @_;

    my $d = $t->testdir;
    unlink "$d/nginx.pid";

    my $t0 = time;
    my $pid = fork();
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        $ENV{TZ} = 'UTC';
        open STDOUT, '>>', "$d/nginx.stderr";
        open STDERR, '>>', "$d/nginx.stderr";
        exec($Test::Ldseg::NGINX, $t->_nginx_args) or POSIX::_exit(127);
    }

    my $ok = Test::Ldseg::wait_for(sub {
        return -1 if waitpid($pid, WNOHANG) == $pid;
        return -s "$d/nginx.pid" ? 1 : 0;
    }, $timeout);

    if ($ok && $ok == 1) {
        my $port = $t->port(8080);
        $ok = Test::Ldseg::wait_for(sub {
            IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1)
        }, $timeout - (time - $t0));
        $ok = $ok ? 1 : 0;
    }

    my $took = time - $t0;

    if ($ok && $ok == 1) {
        $t->{_master} = $pid;
        $t->{_started} = 1;
        return (1, $took);
    }

    my $why = $ok && $ok == -1 ? 'nginx exited' : 'nginx did not start';

    if (waitpid($pid, WNOHANG) == 0) {
        # hung in start-up (or not listening): the master and any worker
        # it started are killed
        $t->{_master} = $pid;
        $t->{_started} = 1;
        $t->kill_all('KILL');
        $why .= " (killed after $timeout s)";
    }

    return (0, $took, $why);
}


sub file_mode {
    my ($path) = @_;
    my @st = stat $path or return undef;
    return sprintf '%04o', $st[2] & 07777;
}


1;
