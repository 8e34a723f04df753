package Test::LdsegMock;

# A mock of LaunchDarkly's events endpoint for the ldseg integration tests.
#
# The mock is a small HTTP/1.1 server forked from the test on a free loopback
# port.  It keeps connections alive (libcurl reuses them), understands
# "Transfer-Encoding: chunked", "Expect: 100-continue" and
# "Content-Encoding: gzip", records every request as one JSON line in
# <dir>/mock-requests.jsonl and answers according to a script that the test
# may change at any time (the script lives in <dir>/mock-script.json and is
# re-read when it changes).  A request records the pid of the nginx process
# that sent it ("pid"), when found at accept.
#
# A script has a default answer and a list of steps:
#
#     $mock->script(
#         default => { status => 202 },
#         steps   => [
#             { status => 503 },                       # next request: 503
#             { status => 429, retry_after => 2 },     # then 429 + Retry-After
#             { delay => 5 },                          # answer after 5 s
#             { reset => 1 },                          # close, no answer
#             { status => 401, path => 'OTHER-ID' },   # first request whose
#                                                      # path matches the regex
#             { status => 503, times => 3 },           # three times
#         ],
#     );
#
# Each request takes the first step with uses left whose "path" (a Perl
# regex) matches it; failing that, the first step with uses left that has no
# "path"; failing that, the default answer.
# A step is {status, retry_after, delay, hang, reset, body, path, times,
# body_match}; "hang" accepts the request and never answers it (until the
# client closes).  "body_match" (a Perl regex, matched against the decoded
# request body) makes a step apply only to requests whose body matches, like
# "path" (with both, both must match); such steps are tried before the steps
# that have neither:
#
#     { status => 400, body_match => '"poison"', times => 1000000 }
#
# A script may also limit what a POST may hold: with max_events => N (or
# max_bytes => N, the decoded body) a bulk POST with more is answered 413
# whatever its step says (the step is still used up):
#
#     $mock->script(default => { status => 202 }, max_events => 300);
#
# Core Perl only.

use strict;
use warnings;

use Carp qw(croak);
use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use IO::Select;
use IO::Socket::INET;
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);
use JSON::PP;
use POSIX qw(WNOHANG);
use Socket qw(SOL_SOCKET SO_LINGER);
use Time::HiRes qw(time sleep);


my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;


sub new {
    my ($class, %opts) = @_;

    my $dir = $opts{dir} or croak "Test::LdsegMock->new: dir is required";

    my $self = bless {
        dir      => $dir,
        log      => "$dir/mock-requests.jsonl",
        ctl      => "$dir/mock-script.json",
        errlog   => "$dir/mock.log",
        _owner   => $$,
    }, $class;

    my $listen = IO::Socket::INET->new(
        Proto     => 'tcp',
        LocalAddr => '127.0.0.1',
        LocalPort => $opts{port} || 0,
        Listen    => 128,
        ReuseAddr => 1,
    ) or croak "mock: cannot listen: $!";

    $self->{port} = $listen->sockport;

    open my $fh, '>', $self->{log} or croak "mock: $self->{log}: $!";
    close $fh;

    $self->script(default => $opts{default} || { status => 202 },
                  steps => $opts{steps} || []);

    my $pid = fork();
    croak "mock: fork: $!" unless defined $pid;

    if ($pid == 0) {
        # the child must never run the test's destructors or END blocks
        my $rc = eval { $self->_serve($listen, $opts{parent} || getppid()); 0 };
        if (!defined $rc) {
            _log_to($self->{errlog}, "mock died: $@");
        }
        POSIX::_exit(0);
    }

    close $listen;
    $self->{pid} = $pid;

    return $self;
}


sub port { $_[0]{port} }


sub url { 'http://127.0.0.1:' . $_[0]{port} }


# Replace the script; steps already used are forgotten.

sub script {
    my ($self, %s) = @_;

    my $script = {
        default => $s{default} || { status => 202 },
        steps   => $s{steps} || [],
        serial  => ++$self->{serial},
    };
    $script->{max_events} = $s{max_events} if defined $s{max_events};
    $script->{max_bytes} = $s{max_bytes} if defined $s{max_bytes};

    my $tmp = "$self->{ctl}.tmp";
    open my $fh, '>', $tmp or croak "mock: $tmp: $!";
    print $fh $JSON->encode($script);
    close $fh or croak "mock: $tmp: $!";
    rename $tmp, $self->{ctl} or croak "mock: rename: $!";

    # the server polls the file; make sure it saw the change before a test
    # goes on to rely on it

    my $deadline = time + 5;
    while (time < $deadline) {
        my $seen = $self->_read_seen;
        return $self if defined $seen && $seen >= $script->{serial};
        last unless $self->{pid} && kill 0, $self->{pid};
        sleep 0.02;
    }

    croak "mock: script change not picked up" if $self->{pid};
    return $self;
}


# All recorded requests, oldest first.  Each is a hashref:
#   method, path, headers (lower-cased names), body (gunzipped), gzip (0|1),
#   wire_length (the body's bytes as sent), gzip_btype (a gzip body without
#   optional header fields: the BTYPE of its first deflate block, 0 stored,
#   1 static codes, 2 dynamic), chunked (0|1), expect (0|1), time (epoch seconds, float),
#   conn (connection number), peer (the client's port), seq,
#   status (answer given; "reset"; "hang"; or
#   "aborted" when the client closed before a delayed answer was due),
#   client_id (for /events/bulk/<id>), events (decoded body array or undef)

sub requests {
    my ($self) = @_;

    my (@r, %aborted);

    open my $fh, '<', $self->{log} or return ();
    while (my $line = <$fh>) {
        next unless $line =~ /\n\z/;    # a line still being written
        my $r = eval { $JSON->decode($line) } or next;
        if (defined $r->{aborted}) {
            $aborted{ $r->{aborted} } = 1;
            next;
        }
        if ($r->{path} =~ m{^/events/bulk/([^/?]+)}) {
            $r->{client_id} = $1;
            my $ev = eval { JSON::PP->new->utf8->decode($r->{body}) };
            $r->{events} = $ev if ref $ev eq 'ARRAY';
        }
        push @r, $r;
    }
    close $fh;

    for my $r (@r) {
        $r->{status} = 'aborted' if $aborted{ $r->{seq} };
    }

    return @r;
}


# POSTs to /events/bulk/*

sub posts {
    my ($self) = @_;
    return grep { $_->{method} eq 'POST' && defined $_->{client_id} }
           $self->requests;
}


# Events LaunchDarkly accepted: from bulk POSTs answered with a 2xx.

sub events {
    my ($self, %f) = @_;
    return map { @{ $_->{events} || [] } }
           grep { $_->{status} =~ /^2\d\d$/
                  && (!defined $f{client_id} || $_->{client_id} eq $f{client_id}) }
           $self->posts;
}


# Events in every bulk POST, whatever the answer (retries counted again).

sub all_events {
    my ($self) = @_;
    return map { @{ $_->{events} || [] } } $self->posts;
}


sub wait_events {
    my ($self, $n, $timeout) = @_;

    $timeout //= 10;
    my $deadline = time + $timeout;
    my $count;

    while (1) {
        $count = () = $self->events;
        return $count if $count >= $n || time >= $deadline;
        sleep 0.05;
    }
}


sub wait_requests {
    my ($self, $n, $timeout) = @_;

    $timeout //= 10;
    my $deadline = time + $timeout;
    my $count;

    while (1) {
        $count = () = $self->requests;
        return $count if $count >= $n || time >= $deadline;
        sleep 0.05;
    }
}


sub stop {
    my ($self) = @_;

    return $self unless $self->{pid} && $self->{_owner} == $$;

    my $pid = delete $self->{pid};
    kill 'TERM', $pid;

    my $deadline = time + 5;
    while (time < $deadline) {
        return $self if waitpid($pid, WNOHANG) != 0;
        sleep 0.05;
    }

    kill 'KILL', $pid;
    waitpid($pid, 0);

    return $self;
}


sub DESTROY {
    my ($self) = @_;
    local ($?, $@, $!);
    $self->stop;
}


###############################################################################
# the server (runs in the child)

sub _read_seen {
    my ($self) = @_;
    open my $fh, '<', "$self->{ctl}.seen" or return undef;
    my $v = <$fh>;
    close $fh;
    return defined $v && $v =~ /^(\d+)/ ? $1 : undef;
}


sub _log_to {
    my ($file, $msg) = @_;
    open my $fh, '>>', $file or return;
    printf $fh "%.3f %s\n", time, $msg;
    close $fh;
}


sub _serve {
    my ($self, $listen, $parent) = @_;

    my $stop = 0;
    $SIG{TERM} = sub { $stop = 1 };
    $SIG{PIPE} = 'IGNORE';
    $SIG{ALRM} = 'DEFAULT';
    alarm 0;

    $listen->blocking(0);

    my %conns;
    my ($ctl_id, $script) = ('', undef);
    my @left;                   # uses left per step
    my ($nconn, $seq) = (0, 0);

    open my $log, '>>', $self->{log} or die "$self->{log}: $!";
    $log->autoflush(1);

    my $load_script = sub {
        my @st = stat $self->{ctl} or return;
        my $id = join ':', @st[1, 7, 9];
        return if $id eq $ctl_id;
        open my $fh, '<', $self->{ctl} or return;
        local $/;
        my $s = eval { $JSON->decode(<$fh>) };
        close $fh;
        return unless $s;
        $ctl_id = $id;
        $script = $s;
        @left = map { $_->{times} // 1 } @{ $s->{steps} };
        open my $seen, '>', "$self->{ctl}.seen.tmp" or return;
        print $seen "$s->{serial}\n";
        close $seen;
        rename "$self->{ctl}.seen.tmp", "$self->{ctl}.seen";
    };

    my $choose = sub {
        my ($path, $body) = @_;
        my $steps = $script->{steps};
        # steps for this path (or body) first, then steps for any request,
        # in order
        for my $any (0, 1) {
            for my $i (0 .. $#$steps) {
                next unless $left[$i] > 0;
                my $p = $steps->[$i]{path};
                my $b = $steps->[$i]{body_match};
                if ($any) {
                    next if defined $p || defined $b;
                } else {
                    next unless defined $p || defined $b;
                    next if defined $p && $path !~ /$p/;
                    next if defined $b && $body !~ /$b/;
                }
                $left[$i]--;
                return $steps->[$i];
            }
        }
        return $script->{default};
    };

    while (!$stop) {
        $load_script->();

        # our parent (the test) is gone: do not linger
        last if getppid() != $parent;

        my $now = time;
        my $timeout = 0.1;

        for my $c (values %conns) {
            next unless defined $c->{respond_at};
            if ($c->{respond_at} <= $now) {
                $c->{out} .= delete $c->{pending};
                delete $c->{respond_at};
                delete $c->{pending_seq};
            } else {
                my $d = $c->{respond_at} - $now;
                $timeout = $d if $d < $timeout;
            }
        }

        my $rsel = IO::Select->new($listen);
        my $wsel = IO::Select->new;
        for my $c (values %conns) {
            $rsel->add($c->{sock});
            $wsel->add($c->{sock}) if length $c->{out};
        }

        my ($r, $w) = IO::Select->select($rsel, $wsel, undef, $timeout);

        for my $s (@{ $w || [] }) {
            my $c = $conns{fileno $s} or next;
            my $n = syswrite $s, $c->{out};
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                _close(\%conns, $c, $log);
                next;
            }
            substr $c->{out}, 0, $n, '';
            if (!length $c->{out} && $c->{close_after}
                && !defined $c->{respond_at})
            {
                _close(\%conns, $c, $log);
            }
        }

        for my $s (@{ $r || [] }) {
            if ($s == $listen) {
                while (my $a = $listen->accept) {
                    $a->blocking(0);
                    $conns{fileno $a} = {
                        sock => $a, in => '', out => '', id => ++$nconn,
                        peer => $a->peerport,
                        pid => _peer_pid($a->peerport),
                    };
                }
                next;
            }

            my $c = $conns{fileno $s} or next;
            my $n = sysread $s, my $buf, 65536;
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                _close(\%conns, $c, $log);
                next;
            }
            if ($n == 0) {
                _close(\%conns, $c, $log);
                next;
            }
            $c->{in} .= $buf;
        }

        # parse whatever arrived; one request at a time per connection

        for my $c (values %conns) {
            next if defined $c->{respond_at} || $c->{close_after};

            while (1) {
                my $req = _parse(\$c->{in}, $c);
                last unless $req;

                $req->{conn} = $c->{id};
                $req->{peer} = $c->{peer};
                $req->{pid} = $c->{pid} if defined $c->{pid};
                $req->{seq} = ++$seq;

                my $step = $choose->($req->{path}, $req->{body});
                my $status = $step->{status} // 202;

                if ($step->{reset} || $step->{hang}) {
                    # no answer: size limits do not matter

                } elsif (defined $script->{max_bytes}
                    && length($req->{body}) > $script->{max_bytes})
                {
                    $step = { %$step, status => 413 };
                    $status = 413;

                } elsif (defined $script->{max_events}) {
                    my $ev = eval { JSON::PP->new->utf8->decode($req->{body}) };
                    if (ref $ev eq 'ARRAY' && @$ev > $script->{max_events}) {
                        $step = { %$step, status => 413 };
                        $status = 413;
                    }
                }

                $req->{status} = $step->{reset} ? 'reset'
                               : $step->{hang} ? 'hang' : $status;
                $req->{delay} = $step->{delay} if $step->{delay};

                print $log $JSON->encode($req), "\n";

                if ($step->{reset}) {
                    my $sock = $c->{sock};
                    setsockopt($sock, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
                    _close(\%conns, $c, $log);
                    last;
                }

                my $body = $step->{body} // '';
                my $resp = "HTTP/1.1 $status " . _reason($status) . "\r\n"
                    . "Content-Type: application/json\r\n"
                    . "Content-Length: " . length($body) . "\r\n";
                $resp .= "Retry-After: $step->{retry_after}\r\n"
                    if defined $step->{retry_after};
                $resp .= "Connection: close\r\n" if $req->{_close};
                $resp .= "\r\n" . $body;

                $c->{close_after} = 1 if $req->{_close};

                if ($step->{delay} || $step->{hang}) {
                    $c->{pending} = $resp;
                    $c->{pending_seq} = $req->{seq};
                    $c->{respond_at} = time
                        + ($step->{hang} ? 1e9 : $step->{delay});
                    last;
                }

                $c->{out} .= $resp;
                last if $c->{close_after};
            }
        }
    }

    _close(\%conns, $_, undef) for values %conns;
    close $log;
}


# the inodes of the TCP sockets (IPv4 and IPv6) whose local port is $port,
# from /proc/net/tcp*, as a hash of inode => 1

sub port_inodes {
    my ($port) = @_;

    my %inode;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        <$fh>;
        while (my $l = <$fh>) {
            my @f = split ' ', $l;
            my ($lp) = $f[1] =~ /:([0-9A-F]+)$/i or next;
            $inode{ $f[9] } = 1 if hex($lp) == $port && $f[9];
        }
        close $fh;
    }

    return %inode;
}


# the nginx process that holds the other end of a connection from local
# port $port (the client's port), found once at accept: /proc/net/tcp gives
# the socket's inode, the nginx processes' fds the owner; undef when not
# found (not an nginx, or gone already)

sub _peer_pid {
    my ($port) = @_;

    my %inode = port_inodes($port);

    return undef unless %inode;

    opendir my $proc, '/proc' or return undef;
    for my $pid (grep { /^\d+$/ } readdir $proc) {
        open my $ch, '<', "/proc/$pid/comm" or next;
        my $comm = <$ch> // '';
        close $ch;
        next unless $comm =~ /^nginx/;

        opendir my $dh, "/proc/$pid/fd" or next;
        for my $fd (readdir $dh) {
            my $l = readlink "/proc/$pid/fd/$fd" // next;
            if ($l =~ /^socket:\[(\d+)\]$/ && $inode{$1}) {
                closedir $dh;
                closedir $proc;
                return $pid + 0;
            }
        }
        closedir $dh;
    }
    closedir $proc;

    return undef;
}


sub _close {
    my ($conns, $c, $log) = @_;
    if (defined $c->{pending_seq} && $log) {
        # the client gave up before the delayed answer: it never got it
        print $log $JSON->encode({ aborted => delete $c->{pending_seq},
                                   time => time }), "\n";
    }
    delete $conns->{ fileno $c->{sock} } if defined fileno $c->{sock};
    close $c->{sock};
}


sub _reason {
    my ($s) = @_;
    my %r = (200 => 'OK', 202 => 'Accepted', 400 => 'Bad Request',
             401 => 'Unauthorized', 403 => 'Forbidden', 404 => 'Not Found',
             408 => 'Request Timeout', 413 => 'Payload Too Large',
             429 => 'Too Many Requests', 500 => 'Internal Server Error',
             502 => 'Bad Gateway', 503 => 'Service Unavailable');
    return $r{$s} || 'Status';
}


# Parse one complete request from the front of $$in.  Returns undef while the
# request is incomplete (after answering "100 Continue" once if asked to).

sub _parse {
    my ($in, $c) = @_;

    my $end = index $$in, "\r\n\r\n";
    return undef if $end < 0;

    my $head = substr $$in, 0, $end;
    my ($line, @lines) = split /\r\n/, $head;
    my ($method, $target, $proto) = split / /, $line, 3;
    $proto //= 'HTTP/1.0';

    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $k = lc $k;
        $h{$k} = exists $h{$k} ? "$h{$k}, $v" : $v;
    }

    my $pos = $end + 4;
    my $body;
    my $chunked = ($h{'transfer-encoding'} // '') =~ /chunked/i ? 1 : 0;
    my $expect = ($h{expect} // '') =~ /100-continue/i ? 1 : 0;

    if ($chunked) {
        $body = '';
        my $p = $pos;
        while (1) {
            my $eol = index $$in, "\r\n", $p;
            goto incomplete if $eol < 0;
            my ($size) = substr($$in, $p, $eol - $p) =~ /^([0-9a-fA-F]+)/;
            $size = hex($size // 0);
            $p = $eol + 2;
            if ($size == 0) {
                # trailers, then an empty line
                while (1) {
                    my $e = index $$in, "\r\n", $p;
                    goto incomplete if $e < 0;
                    my $t = substr $$in, $p, $e - $p;
                    $p = $e + 2;
                    last if $t eq '';
                }
                last;
            }
            goto incomplete if length($$in) < $p + $size + 2;
            $body .= substr $$in, $p, $size;
            $p += $size + 2;
        }
        $pos = $p;

    } else {
        my $len = $h{'content-length'} // 0;
        goto incomplete if length($$in) < $pos + $len;
        $body = substr $$in, $pos, $len;
        $pos += $len;
    }

    substr $$in, 0, $pos, '';
    delete $c->{continued};

    my $gzip = ($h{'content-encoding'} // '') =~ /gzip/i ? 1 : 0;
    my $wire_length = length $body;
    my ($gzip_error, $btype);
    if ($gzip && length($body) > 10 && ord(substr($body, 3, 1)) == 0) {
        $btype = (ord(substr($body, 10, 1)) >> 1) & 3;
    }
    if ($gzip) {
        my $out;

        # Strict: the trailer's CRC-32 and length are checked, as a real
        # server's gzip reader does (Go's compress/gzip)
        if (gunzip(\$body => \$out, Strict => 1)) {
            $body = $out;
        } else {
            $gzip_error = "$GunzipError";
        }
    }

    my $close = ($h{connection} // '') =~ /close/i
        || ($proto eq 'HTTP/1.0' && ($h{connection} // '') !~ /keep-alive/i);

    my ($path) = $target =~ /^([^?]*)/;

    return {
        method   => $method,
        target   => $target,
        path     => $path,
        proto    => $proto,
        headers  => \%h,
        body     => $body,
        gzip     => $gzip,
        wire_length => $wire_length,
        (defined $btype ? (gzip_btype => $btype) : ()),
        (defined $gzip_error ? (gzip_error => $gzip_error) : ()),
        chunked  => $chunked,
        expect   => $expect,
        time     => time,
        _close   => $close ? 1 : 0,
    };

incomplete:
    if ($expect && !$c->{continued}) {
        $c->{continued} = 1;
        $c->{out} .= "HTTP/1.1 100 Continue\r\n\r\n";
    }
    return undef;
}


1;
