package Test::Ldseg;

# The ldseg integration test harness, in the shape of nginx-tests'
# lib/Test/Nginx.pm.
#
#     my $t = Test::Ldseg->new()->plan(5);
#     my $mock = $t->mock;                     # mock LaunchDarkly
#     $t->write_file_expand('nginx.conf', <<'EOF');
#     %%TEST_GLOBALS%%
#     http {
#         %%TEST_GLOBALS_HTTP%%
#         ldseg_zone ldseg 1m;
#         ldseg_events_url %%MOCK%%;
#         server {
#             listen 127.0.0.1:%%PORT_8080%%;
#             location /v1/ { ldseg on; ldseg_client_side_id X; }
#         }
#     }
#     EOF
#     $t->run;
#     my ($status, $headers, $body) = $t->http_post('/v1/track', $json);
#
# plan(N) adds the teardown checks (TEARDOWN_TESTS of them): when the test
# object goes away nginx is stopped with "quit" and error.log must hold no
# [alert], [crit], [emerg], "open socket", "Sanitizer" or "exited on signal"
# lines, nginx must have quit within 15 s, and where a /status location
# is configured its counters must add up (received = accepted + rejected,
# in total and per destination) when nginx is stopped.
#
# Test::Ldseg->new(module => $path) loads that build of the module instead
# of build/ngx_http_ldseg_module.so (t/490-crashpoints.t loads the one of
# "make crashpoints"); so does TEST_LDSEG_MODULE for every test file.
#
# Environment: TEST_NGINX_BINARY (default /usr/sbin/nginx), TEST_NGINX_STATIC
# (the binary has ldseg compiled in; detected from "nginx -V" as well),
# TEST_LDSEG_MODULE (the module to load, default build/...so),
# TEST_NGINX_LEAVE (keep the test directory), TEST_NGINX_CATLOG (print
# error.log at the end), TEST_NGINX_VERBOSE (diag what the harness does),
# TEST_LDSEG_TIMEOUT (watchdog for a whole test file, default 240 s).
#
# Core Perl only.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use File::Basename qw(dirname);
use File::Path qw(rmtree);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use B ();
use Compress::Zlib qw(crc32);
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Test::More ();
use Time::HiRes qw(time sleep);

use Test::LdsegMock;

use constant TEARDOWN_TESTS => 3;

our $NGINX = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
our $ROOT = abs_path(dirname(__FILE__) . '/../../..');
our $MODULE = "$ROOT/build/ngx_http_ldseg_module.so";

my @instances;
my %ports_taken;


sub new {
    my ($class, %opts) = @_;

    my $self = bless {
        _pid      => $$,
        ports     => {},
        no_module => $opts{no_module} ? 1 : 0,
        module    => $opts{module} || $ENV{TEST_LDSEG_MODULE} || $MODULE,
    }, $class;

    $SIG{PIPE} = 'IGNORE';

    Test::More::BAIL_OUT("no $NGINX binary found") unless -x $NGINX;

    $self->{static} = $ENV{TEST_NGINX_STATIC}
        || `$NGINX -V 2>&1` =~ /ldseg/ ? 1 : 0;

    if (!$self->{no_module} && !$self->{static} && !-f $self->{module}) {
        Test::More::plan(skip_all => "$self->{module} not built (run make)");
    }

    # a build of its own cannot be loaded into a binary that has ldseg

    if ($opts{module} && $self->{static}) {
        Test::More::plan(skip_all => "needs the dynamic module $opts{module}");
    }

    $self->{_testdir} = tempdir('ldseg-test-XXXXXXXXXX', TMPDIR => 1)
        or die "cannot create a temp directory: $!\n";
    chmod 0755, $self->{_testdir};

    # a hung test is a failed test: bound the whole file in time

    my $limit = $ENV{TEST_LDSEG_TIMEOUT} || 240;
    $SIG{ALRM} = sub { die "test file timed out after $limit s\n" };
    alarm $limit;

    push @instances, $self;
    weaken $instances[-1];

    return $self;
}


sub plan {
    my ($self, $n) = @_;
    Test::More::plan(tests => $n + TEARDOWN_TESTS);
    $self->{_planned} = 1;
    return $self;
}


sub testdir { $_[0]{_testdir} }


sub verbose {
    my ($self, $msg) = @_;
    Test::More::diag($msg) if $ENV{TEST_NGINX_VERBOSE};
}


###############################################################################
# ports and configuration

# A free loopback port for the symbolic number $n (8080, 8081, ...), the same
# one for the whole test file.

sub port {
    my ($self, $n) = @_;

    return $self->{ports}{$n} if defined $self->{ports}{$n};

    for (1 .. 50) {
        my $s = IO::Socket::INET->new(
            Proto     => 'tcp',
            LocalAddr => '127.0.0.1',
            LocalPort => 0,
            Listen    => 1,
        ) or next;
        my $p = $s->sockport;
        close $s;
        next if $ports_taken{$p}++;
        return $self->{ports}{$n} = $p;
    }

    die "no free port\n";
}


sub mock {
    my ($self, %opts) = @_;

    return $self->{_mock} if $self->{_mock} && !%opts;
    $self->{_mock}->stop if $self->{_mock};

    $self->{_mock} = Test::LdsegMock->new(dir => $self->{_testdir}, %opts);
    return $self->{_mock};
}


sub module_path { ref $_[0] ? $_[0]{module} : $MODULE }


sub test_globals {
    my ($self) = @_;

    my $d = $self->{_testdir};
    my $s = "pid $d/nginx.pid;\n"
        . "error_log $d/error.log debug;\n"
        . "daemon off;\n"
        . "env TZ=UTC;\n";

    $s .= "load_module " . $self->_module_copy . ";\n"
        unless $self->{static} || $self->{no_module};
    $s .= "user root;\n" if $> == 0;

    return $s;
}


# nginx loads a private copy of the module: a rebuild that rewrites
# build/ngx_http_ldseg_module.so (or the module given to new()) in place
# must not change the code under a running test

sub _module_copy {
    my ($self) = @_;

    my $copy = "$self->{_testdir}/ngx_http_ldseg_module.so";
    return $copy if -f $copy;

    my $module = $self->{module};
    open my $in, '<', $module or die "$module: $!\n";
    binmode $in;
    open my $out, '>', "$copy.tmp" or die "$copy.tmp: $!\n";
    binmode $out;
    local $/;
    my $so = <$in>;
    print {$out} $so;
    close $out or die "$copy.tmp: $!\n";
    close $in;
    rename "$copy.tmp", $copy or die "rename $copy: $!\n";

    return $copy;
}


sub test_globals_http {
    my ($self) = @_;

    my $d = $self->{_testdir};
    return "access_log off;\n"
        . "client_body_temp_path $d/client_body_temp;\n"
        . "proxy_temp_path $d/proxy_temp;\n"
        . "fastcgi_temp_path $d/fastcgi_temp;\n"
        . "uwsgi_temp_path $d/uwsgi_temp;\n"
        . "scgi_temp_path $d/scgi_temp;\n";
}


sub write_file {
    my ($self, $name, $content) = @_;

    open my $fh, '>', "$self->{_testdir}/$name"
        or die "cannot create $name: $!\n";
    binmode $fh;
    print $fh $content;
    close $fh or die "cannot write $name: $!\n";

    return $self;
}


sub write_file_expand {
    my ($self, $name, $content) = @_;

    $content =~ s/%%TEST_GLOBALS%%/$self->test_globals/ge;
    $content =~ s/%%TEST_GLOBALS_HTTP%%/$self->test_globals_http/ge;
    $content =~ s/%%TESTDIR%%/$self->{_testdir}/g;
    $content =~ s/%%MOCK%%/$self->mock->url/ge;
    $content =~ s/%%MOCK_PORT%%/$self->mock->port/ge;

    while ($content =~ /%%PORT_(\d+)%%/g) {
        $self->{listen}{$1} = 1 if $name eq 'nginx.conf';
    }
    $content =~ s/%%PORT_(\d+)%%/$self->port($1)/ge;

    return $self->write_file($name, $content);
}


sub read_file {
    my ($self, $name) = @_;

    open my $fh, '<', "$self->{_testdir}/$name" or return '';
    binmode $fh;
    local $/;
    my $c = <$fh>;
    close $fh;

    return $c // '';
}


###############################################################################
# nginx processes

sub _nginx_args {
    my ($self) = @_;
    return ('-p', "$self->{_testdir}/", '-c', "$self->{_testdir}/nginx.conf",
            '-e', "$self->{_testdir}/error.log");
}


sub run {
    my ($self) = @_;

    my $d = $self->{_testdir};
    unlink "$d/nginx.pid";

    $self->verbose("starting nginx in $d");

    my $pid = fork();
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        $ENV{TZ} = 'UTC';
        open STDOUT, '>>', "$d/nginx.stderr";
        open STDERR, '>>', "$d/nginx.stderr";
        exec($NGINX, $self->_nginx_args) or POSIX::_exit(127);
    }

    $self->{_master} = $pid;
    $self->{_started} = 1;

    my $ok = wait_for(sub {
        return -1 if waitpid($pid, WNOHANG) == $pid;
        return -s "$d/nginx.pid" ? 1 : 0;
    }, 10);

    if (!$ok || $ok == -1) {
        $self->{_started} = 0;
        delete $self->{_master};
        die "cannot start nginx: " . $self->read_file('nginx.stderr')
            . _tail($self->read_file('error.log'), 20);
    }

    for my $n (sort keys %{ $self->{listen} || {} }) {
        my $port = $self->port($n);
        wait_for(sub {
            IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1)
        }, 10) or die "nginx does not listen on port $port\n";
    }

    return $self;
}


sub master_pid { $_[0]{_master} }


# pids of the processes whose parent is the master (workers)

sub workers {
    my ($self) = @_;

    my $master = $self->{_master} or return ();
    my @w;

    opendir my $dh, '/proc' or return ();
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$p/stat" or next;
        my $stat = <$fh>;
        close $fh;
        next unless defined $stat;
        my ($state, $ppid) = $stat =~ /\)\s+(\S)\s+(\d+)/ or next;
        push @w, $p if $ppid == $master && $state ne 'Z';
    }
    closedir $dh;

    return sort { $a <=> $b } @w;
}


sub _alive {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh> // '';
    close $fh;
    my ($state) = $stat =~ /\)\s+(\S)/;
    return defined $state && $state ne 'Z' ? 1 : 0;
}


# "nginx -s reload"; waits until every old worker has exited and new ones
# run.  Returns true on success.

sub reload {
    my ($self, $timeout) = @_;

    return 0 unless $self->{_started};

    my @old = $self->workers;
    my $log_before = length $self->read_file('error.log');

    kill 'HUP', $self->{_master};

    my $ok = wait_for(sub {
        my @now = $self->workers;
        my %old = map { $_ => 1 } @old;
        return 0 if grep { _alive($_) } @old;
        return scalar grep { !$old{$_} } @now;
    }, $timeout || 20);

    if (!$ok) {
        my $log = substr $self->read_file('error.log'), $log_before;
        Test::More::diag("reload did not complete:\n" . _tail($log, 20));
    }

    return $ok ? 1 : 0;
}


# "nginx -s quit"; waits 15 s for the master to exit, then kills everything
# and records the failure for the teardown check.

sub stop {
    my ($self) = @_;

    return $self unless $self->{_started};

    my $pid = $self->{_master};
    my @workers = $self->workers;

    $self->_check_counters;

    $self->verbose("stopping nginx $pid");
    kill 'QUIT', $pid;

    my $status;
    my $exited = wait_for(sub {
        my $r = waitpid($pid, WNOHANG);
        $status = $? if $r == $pid;
        return $r != 0;
    }, 15);

    if (!$exited) {
        kill 'KILL', $pid, $self->workers, @workers;
        waitpid($pid, 0);
        push @{ $self->{_stop_errors} },
            "nginx did not quit within 15 s (killed)";
    } elsif ($status) {
        push @{ $self->{_stop_errors} },
            "nginx master exited with status $status";
    }

    # workers are children of the master and gone with it; make sure

    if (my @left = grep { _alive($_) } @workers) {
        kill 'KILL', @left;
        push @{ $self->{_stop_errors} }, "workers left behind: @left";
    }

    $self->{_started} = 0;
    delete $self->{_master};

    return $self;
}


# Before nginx stops: where the configuration has "location /status" with
# ldseg_status, the counters must add up, received = accepted + rejected,
# in total and for every destination (a request counted between two reads
# of the totals is given three tries to settle).

sub _check_counters {
    my ($self) = @_;

    my $conf = eval { $self->read_file('nginx.conf') } // '';
    return unless $conf =~ m!location\s+/status\s*\{[^}]*ldseg_status;!s;

    my @bad;
    for my $try (1 .. 3) {
        my $s = eval { $self->status('/status', -timeout => 5) };
        return unless $s && ref $s eq 'HASH' && defined $s->{received};

        @bad = ();
        push @bad, "total: received $s->{received} != accepted "
                   . "$s->{accepted} + rejected $s->{rejected}"
            if $s->{received} != $s->{accepted} + $s->{rejected};
        for my $d (@{ $s->{destinations} || [] }) {
            push @bad, "$d->{client_side_id}: received $d->{received} != "
                       . "accepted $d->{accepted} + rejected $d->{rejected}"
                if $d->{received} != $d->{accepted} + $d->{rejected};
        }
        last unless @bad;
        select undef, undef, undef, 0.2;
    }

    push @{ $self->{_count_errors} }, @bad;
}


# error.log lines that fail a test file at teardown

sub log_problems {
    my ($self) = @_;

    my $log = $self->read_file('error.log');
    my @allow = @{ $self->{_allow_log} || [] };
    return grep {
        my $l = $_;
        (/\[(alert|crit|emerg)\]/
         || /open socket/ || /Sanitizer/ || /exited on signal/)
        && !grep { $l =~ $_ } @allow
    } split /\n/, $log;
}


# allow_log(qr/.../, ...): error.log lines matching one of these do not fail
# the teardown check (e.g. the "exited on signal 11" of a deliberate kill);
# every other alert still does

sub allow_log {
    my ($self, @re) = @_;
    push @{ $self->{_allow_log} }, @re;
    return $self;
}


sub _teardown {
    my ($self) = @_;

    return if $self->{_torn_down} || $self->{_pid} != $$
              || !$self->{_testdir};
    $self->{_torn_down} = 1;

    local $?;

    $self->stop;
    $self->{_mock}->stop if $self->{_mock};

    if ($self->{_planned} && Test::More->builder->expected_tests) {
        Test::More::is(join("\n", $self->log_problems), '',
                       'error.log: no alert, crit, emerg, crash or leak');
        Test::More::is(join("\n", @{ $self->{_stop_errors} || [] }), '',
                       'nginx quit in time');
        Test::More::is(join("\n", @{ $self->{_count_errors} || [] }), '',
                       'status: received = accepted + rejected, in total '
                       . 'and per destination');
    }

    if ($ENV{TEST_NGINX_CATLOG}) {
        print STDERR $self->read_file('error.log');
    }

    if ($ENV{TEST_NGINX_LEAVE}) {
        Test::More::diag("test directory left in $self->{_testdir}");
    } else {
        eval { rmtree($self->{_testdir}) };
    }
}


sub DESTROY {
    my ($self) = @_;
    local ($@, $!);
    $self->_teardown;
}


# Run before Test::Builder's own END block (which checks the plan): this
# module is compiled after Test::More, so its END block runs first.

END {
    for my $t (grep { defined } @instances) {
        $t->_teardown;
    }
}


###############################################################################
# configuration checks

# Runs "nginx -t" on nginx.conf (or on $conf, written to a file of its own).
# Returns (exit status, output).

sub nginx_t {
    my ($self, $conf) = @_;

    my $d = $self->{_testdir};
    my $file = "$d/nginx.conf";

    if (defined $conf) {
        $file = "$d/test-" . ++$self->{_tconf} . '.conf';
        my $c = $conf;
        $self->write_file_expand("test-$self->{_tconf}.conf", $c);
    }

    my $out = '';
    my $pid = open my $fh, '-|';
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        $ENV{TZ} = 'UTC';
        exec($NGINX, '-t', '-p', "$d/", '-c', $file, '-e', 'stderr')
            or POSIX::_exit(127);
    }

    local $/;
    $out = <$fh> // '';
    close $fh;

    return ($? >> 8, $out);
}


# conf_fails($regex, $name) checks nginx.conf; conf_fails($conf, $regex,
# $name) checks the given configuration text (expanded like nginx.conf).
# Passes when "nginx -t" fails and its [emerg] line matches $regex.

sub conf_fails {
    my $self = shift;
    my $conf = ref $_[0] ? undef : shift;
    my ($re, $name) = @_;

    my ($rc, $out) = $self->nginx_t($conf);
    my ($emerg) = $out =~ /^(.*\[emerg\].*)$/m;

    my $ok = $rc != 0 && defined $emerg && $emerg =~ $re;
    Test::More::ok($ok, $name || "nginx -t fails: $re");
    if (!$ok) {
        Test::More::diag("nginx -t exit $rc, output:\n$out");
    }

    return $ok;
}


sub conf_ok {
    my $self = shift;
    my $conf = @_ > 1 ? shift : undef;
    my ($name) = @_;

    my ($rc, $out) = $self->nginx_t($conf);
    my $ok = $rc == 0 && $out !~ /\[(emerg|alert|crit)\]/;
    Test::More::ok($ok, $name || 'nginx -t succeeds');
    Test::More::diag("nginx -t exit $rc, output:\n$out") unless $ok;

    return $ok;
}


###############################################################################
# HTTP client

# http($raw_request, port => N, timeout => S) sends $raw_request to
# 127.0.0.1:port(8080) and returns the raw answer (read until the server
# closes the connection).

sub http {
    my ($self, $request, %opts) = @_;

    my $port = $opts{port} // $self->port(8080);
    my $timeout = $opts{timeout} // 10;
    my $quiet = $opts{quiet};

    my $s = IO::Socket::INET->new(
        Proto    => 'tcp',
        PeerAddr => '127.0.0.1',
        PeerPort => $port,
        Timeout  => $timeout,
    ) or do {
        Test::More::diag("cannot connect to 127.0.0.1:$port: $!")
            unless $quiet;
        return '';
    };

    $s->blocking(0);
    my $sel = IO::Select->new($s);
    my $deadline = time + $timeout;
    my ($out, $in) = ($request, '');

    # write and read at the same time: the server may answer (and close)
    # before it has read everything

    while (time < $deadline) {
        my $left = $deadline - time;
        my ($r, $w) = IO::Select->select($sel, length $out ? $sel : undef,
                                         undef, $left);
        if ($w && @$w) {
            my $n = syswrite $s, $out, 65536;
            if (defined $n) {
                substr $out, 0, $n, '';
            } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                $out = '';
            }
        }
        if ($r && @$r) {
            my $n = sysread $s, my $buf, 65536;
            if (defined $n) {
                last if $n == 0;
                $in .= $buf;
            } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                last;
            }
        }
    }

    if (time >= $deadline && !$quiet) {
        Test::More::diag("http: timed out after $timeout s on port $port");
    }

    close $s;
    return $in;
}


# (status, {lower-case header => value}, body) of a raw answer; a chunked
# body is decoded

sub parse_response {
    my ($raw) = @_;

    my $end = index $raw, "\r\n\r\n";
    return (0, {}, '') if $end < 0;

    my ($line, @lines) = split /\r\n/, substr($raw, 0, $end);
    my ($status) = $line =~ m{^HTTP/\d\.\d\s+(\d+)} or return (0, {}, '');
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $k = lc $k;
        $h{$k} = exists $h{$k} ? "$h{$k}, $v" : $v;
    }

    my $body = substr $raw, $end + 4;

    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my $b = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $b .= substr $body, 0, $n, '';
            $body =~ s/^\r\n//;
        }
        $body = $b;
    }

    return ($status + 0, \%h, $body);
}


# http_request(method => 'POST', path => '/v1/t', body => $b,
#              headers => [Name => value, ...], port => N, timeout => S)
# returns (status, headers, body); Content-Length is added for a body

sub http_request {
    my ($self, %o) = @_;

    my $method = $o{method} || 'GET';
    my $path = $o{path} || '/';
    my @h = @{ $o{headers} || [] };
    my %have = map { lc $_ => 1 } @h[grep { $_ % 2 == 0 } 0 .. $#h];

    my $req = "$method $path HTTP/1.1\r\n";
    $req .= "Host: localhost\r\n" unless $have{host};
    $req .= "Connection: close\r\n" unless $have{connection};
    $req .= "Content-Length: " . length($o{body}) . "\r\n"
        if defined $o{body} && !$have{'content-length'}
           && !$have{'transfer-encoding'};
    while (my ($k, $v) = splice @h, 0, 2) {
        $req .= "$k: $v\r\n";
    }
    $req .= "\r\n";
    $req .= $o{body} if defined $o{body};

    my $raw = $self->http($req, port => $o{port}, timeout => $o{timeout},
                          quiet => $o{quiet});
    return parse_response($raw);
}


sub http_get {
    my ($self, $path, %h) = @_;
    my %o = _opts(\%h);
    return $self->http_request(%o, method => 'GET', path => $path,
                               headers => [%h]);
}


# http_post($path, $body, Header => value, ...); Content-Type defaults to
# application/json.  Options: -port, -timeout, -method.

sub http_post {
    my ($self, $path, $body, %h) = @_;
    my %o = _opts(\%h);
    $h{'Content-Type'} = 'application/json'
        unless grep { lc $_ eq 'content-type' } keys %h;
    delete $h{'Content-Type'} unless defined $h{'Content-Type'};
    return $self->http_request(%o, method => $o{method} || 'POST',
                               path => $path, body => $body,
                               headers => [%h]);
}


sub _opts {
    my ($h) = @_;
    my %o;
    for my $k (grep { /^-/ } keys %$h) {
        $o{ substr $k, 1 } = delete $h->{$k};
    }
    return %o;
}


###############################################################################
# small helpers (also usable as functions)

sub wait_for {
    shift if ref $_[0] && ref $_[0] ne 'CODE';
    my ($cb, $timeout) = @_;

    my $deadline = time + ($timeout // 10);
    while (1) {
        my $v = $cb->();
        return $v if $v;
        return $v if time >= $deadline;
        sleep 0.05;
    }
}


sub basic_auth {
    shift if ref $_[0];
    my ($user, $pass) = @_;
    return 'Basic ' . encode_base64("$user:" . ($pass // ''), '');
}


# how the status and dead letters name a write key: its first four
# characters, "...", and the CRC32 of the whole key in hex ("other": the
# write keys without counters of their own)

sub key_label {
    shift if ref $_[0];
    my ($key) = @_;
    return 'other' if $key eq '';
    return substr($key, 0, 4) . '...' . sprintf('%08x', crc32($key));
}


# decoded JSON body or undef

sub json {
    shift if ref $_[0];
    my ($text) = @_;
    return eval { JSON::PP->new->utf8->decode($text) };
}


sub _tail {
    my ($text, $n) = @_;
    my @l = split /\n/, $text // '';
    splice @l, 0, @l - $n if @l > $n;
    return join("\n", @l) . "\n";
}


###############################################################################
# JSON values compared the way the conformance README says: key order
# ignored, numbers as IEEE doubles, strings exactly, absent differs from null

# JSON::PP marks numbers by their flags; classify before anything stringifies
# them (stringifying a number adds a string flag)

sub _is_number {
    my $f = B::svref_2object(\$_[0])->FLAGS;
    return 0 if $f & B::SVp_POK();
    return ($f & (B::SVp_IOK() | B::SVp_NOK())) ? 1 : 0;
}


# a comparable copy: numbers become "N:<%.17g of the double>", strings
# "S:<string>", booleans "B:0|1", null "null"

sub canon {
    shift if ref $_[0] && ref $_[0] eq __PACKAGE__;
    my ($v) = @_;

    return 'null' unless defined $v;
    if (ref $v && ref($v) =~ /^Math::Big/) {
        # allow_bignum: a number longer than a double, compared as one
        my $d = 0 + sprintf('%.17g', $v->numify);
        $d = 0 if $d == 0;
        return 'N:' . sprintf('%.17g', $d);
    }
    if (ref $v eq 'HASH') {
        return { map { $_ => canon($v->{$_}) } keys %$v };
    }
    if (ref $v eq 'ARRAY') {
        return [ map { canon($_) } @$v ];
    }
    if (JSON::PP::is_bool($v)) {
        return $v ? 'B:1' : 'B:0';
    }
    if (_is_number($v)) {
        my $d = 0 + sprintf('%.17g', $v);
        $d = 0 if $d == 0;
        return 'N:' . sprintf('%.17g', $d);
    }
    return "S:$v";
}


# match_events(\@want, \@posts): the events LaunchDarkly got (the 2xx POSTs
# of the mock) against the expected ones, as a multiset.  A want is
# { case, event (canon), now, t0, t1 }: with now, creationDate may be any
# time within 120 s of [t0, t1] (seconds).  Returns ({ case => [wants
# missing] }, [events got but not expected, or got twice]).

sub _same {
    my ($a, $b, $skip) = @_;

    return 0 if ref $a ne ref $b;
    if (ref $a eq 'HASH') {
        my @ka = sort grep { !$skip || $_ ne $skip } keys %$a;
        my @kb = sort grep { !$skip || $_ ne $skip } keys %$b;
        return 0 if "@ka" ne "@kb";
        for (@ka) { return 0 unless _same($a->{$_}, $b->{$_}) }
        return 1;
    }
    if (ref $a eq 'ARRAY') {
        return 0 if @$a != @$b;
        for (0 .. $#$a) { return 0 unless _same($a->[$_], $b->[$_]) }
        return 1;
    }
    return $a eq $b;
}

sub match_events {
    shift if ref $_[0] && ref $_[0] eq __PACKAGE__;
    my ($want, $posts) = @_;

    my @got = map {
        my $p = $_;
        my $events = canon_json($p->{body});
        map { { event => $_, time => $p->{time}, used => 0 } }
            ref $events eq 'ARRAY' ? @$events : ();
    } grep { $_->{status} =~ /^2/ } @$posts;

    # exact expectations first, then "now" ones; an index by event text
    # keeps thousands of events linear

    my %by;
    push @{ $by{ canon_text($_->{event}) } }, $_ for @got;

    my %missing;

    for my $w (sort { ($a->{now} ? 1 : 0) <=> ($b->{now} ? 1 : 0) } @$want) {
        my $found;
        if (!$w->{now}) {
            ($found) = grep { !$_->{used} }
                       @{ $by{ canon_text($w->{event}) } || [] };
        } else {
            for my $g (@got) {
                next if $g->{used};
                next unless ref $g->{event} eq 'HASH'
                            && exists $g->{event}{creationDate}
                            && _same($w->{event}, $g->{event}, 'creationDate');
                my $v = $g->{event}{creationDate} // '';
                my $ms = $v =~ /^N:(.*)$/ ? $1 + 0 : undef;
                next unless defined $ms
                    && $ms >= $w->{t0} * 1000 - 120000
                    && $ms <= $w->{t1} * 1000 + 120000;
                $found = $g;
                last;
            }
        }
        if ($found) {
            $found->{used} = 1;
        } else {
            push @{ $missing{ $w->{case} } }, $w;
        }
    }

    return (\%missing, [ grep { !$_->{used} } @got ]);
}


# JSON decoding that keeps the number/string distinction: returns canon()

sub canon_json {
    shift if ref $_[0] && ref $_[0] eq __PACKAGE__;
    my ($text) = @_;
    my $v = eval {
        JSON::PP->new->utf8->allow_nonref->allow_bignum->decode($text)
    };
    return $@ ? undef : canon($v);
}


# compact JSON text of a canon() value (for messages)

sub canon_text {
    shift if ref $_[0] && ref $_[0] eq __PACKAGE__;
    my ($c) = @_;
    my $J = JSON::PP->new->canonical->allow_nonref;

    if (ref $c eq 'HASH') {
        return '{' . join(',', map { $J->encode($_) . ':' . canon_text($c->{$_}) }
                                   sort keys %$c) . '}';
    }
    if (ref $c eq 'ARRAY') {
        return '[' . join(',', map { canon_text($_) } @$c) . ']';
    }
    return 'null' if $c eq 'null';
    return $c eq 'B:1' ? 'true' : 'false' if $c =~ /^B:/;
    return substr($c, 2) if $c =~ /^N:/;
    return $J->encode(substr $c, 2);
}


# Compact JSON of Perl data from JSON::PP; numbers keep every digit a double
# has (JSON::PP prints 15), strings are UTF-8

sub encode_json_exact {
    shift if ref $_[0] && ref $_[0] eq __PACKAGE__;
    my ($v) = @_;
    my $J = JSON::PP->new->utf8->allow_nonref;

    return 'null' unless defined $v;
    if (ref $v eq 'HASH') {
        return '{' . join(',', map { $J->encode("$_") . ':'
                                     . encode_json_exact($v->{$_}) }
                                   sort keys %$v) . '}';
    }
    if (ref $v eq 'ARRAY') {
        return '[' . join(',', map { encode_json_exact($_) } @$v) . ']';
    }
    return $v ? 'true' : 'false' if JSON::PP::is_bool($v);
    if (_is_number($v)) {
        my $f = B::svref_2object(\$v)->FLAGS;
        return sprintf('%s', $v) if !($f & B::SVp_NOK());
        my $s = sprintf('%.15g', $v);
        $s = sprintf('%.17g', $v) if $s != $v;
        return $s;
    }
    return $J->encode($v);
}


# status JSON from the location at $path (default /status)

sub status {
    my ($self, $path, %o) = @_;
    my ($code, undef, $body) = $self->http_get($path || '/status', %o);
    return $code == 200 ? json($body) : undef;
}


###############################################################################
# faults: killing nginx processes

# kill_all($signal): sends $signal (default KILL) to the master and every
# worker at once, as a power loss or an OOM killer would, and waits until all
# of them are gone.  nginx counts as stopped; run() starts it again.

sub kill_all {
    my ($self, $sig) = @_;

    return $self unless $self->{_started};

    $sig ||= 'KILL';
    my $master = $self->{_master};
    my @w = $self->workers;

    $self->verbose("kill -$sig $master @w");
    kill $sig, $master, @w;

    my $gone = wait_for(sub { waitpid($master, WNOHANG) != 0 }, 10);
    if (!$gone) {
        kill 'KILL', $master;
        waitpid($master, 0);
    }
    wait_for(sub { !grep { _alive($_) } @w }, 10)
        or kill 'KILL', grep { _alive($_) } @w;

    $self->{_started} = 0;
    delete $self->{_master};

    return $self;
}


# kill_worker($pid, $signal): one worker; waits until it is gone and the
# master has started a replacement (returns the new worker list, or an empty
# list when none appeared within 10 s)

sub kill_worker {
    my ($self, $pid, $sig) = @_;

    my $n = () = $self->workers;
    kill $sig || 'SEGV', $pid;

    wait_for(sub { !_alive($pid) }, 10) or return ();
    my @now;
    wait_for(sub { @now = grep { $_ != $pid } $self->workers; @now >= $n },
             10) or return ();

    return @now;
}


# the nginx worker whose TCP socket has the local port $port (a connection
# to the mock: the mock records the client port as "peer"), or undef

sub worker_for_port {
    my ($self, $port) = @_;

    my %inode = Test::LdsegMock::port_inodes($port);

    return undef unless %inode;

    for my $w ($self->workers) {
        opendir my $dh, "/proc/$w/fd" or next;
        for my $fd (readdir $dh) {
            my $l = readlink "/proc/$w/fd/$fd" // next;
            if ($l =~ /^socket:\[(\d+)\]$/ && $inode{$1}) {
                closedir $dh;
                return $w;
            }
        }
        closedir $dh;
    }

    return undef;
}


###############################################################################
# load: forked clients sending uniquely named events

# my $load = $t->load(name => 'o', duration => 30, interval => 0.03,
#                     clients => 2, per_request => 1, pad => 0,
#                     count => 100000, timeout => 5, path => '/v1/track');
# Each client sends requests one after the other until count requests,
# duration seconds or $load->stop; every event is a "track" whose event name
# (the LaunchDarkly "key") is unique: "<name>-<client>-<request>-<message>".
# $load->wait / $load->stop return the results:
#   { sent => [ids], acked => [ids of 2xx answers], refused => [ids of
#     503s], noanswer => [ids of requests without an answer in time],
#     other => [ids], codes => {status => requests}, retry_after =>
#     {value => 503s}, requests => N, max_latency => s,
#     info => { id => { code, time (sent), latency, pid, port } } }
# (pid: the X-Pid header of the answer, when the configuration adds one,
# e.g. "add_header X-Pid $pid always;"; port: where the request went).
# ports => [p1, p2, ...] spreads the requests over several servers, as a
# load balancer would: request i of client c goes to ports[(c + i) % n].

sub load {
    my ($self, %o) = @_;
    return Test::Ldseg::Load->new($self, %o);
}


# tally(mock => $mock, acked => [ids], maybe => [ids], sent => N,
#       match => qr/^o-/) counts what LaunchDarkly (the mock) accepted:
#   sent, acked, delivered (acked ids seen in a 2xx POST), seen (distinct
#   matching keys in 2xx POSTs), duplicated (keys in more than one 2xx
#   POST), dup_other_id [keys whose copies carry different payload IDs],
#   dup_same_post [keys twice in one POST], missing [acked, not delivered],
#   unacked [delivered, neither acked nor in maybe], maybe_delivered N

sub tally {
    shift if ref $_[0] && ref $_[0] eq __PACKAGE__;
    my (%o) = @_;

    my $mock = $o{mock};
    my $match = $o{match};
    my %acked = map { $_ => 1 } @{ $o{acked} || [] };
    my %maybe = map { $_ => 1 } @{ $o{maybe} || [] };

    my (%n, %pids, %same_post);

    for my $p (grep { $_->{status} =~ /^2\d\d$/ } $mock->posts) {
        my $pid = $p->{headers}{'x-launchdarkly-payload-id'} // '';
        my %in;
        for my $e (@{ $p->{events} || [] }) {
            my $k = ref $e eq 'HASH' ? $e->{key} : undef;
            next unless defined $k;
            next if $match && $k !~ $match;
            $n{$k}++;
            $pids{$k}{$pid} = 1;
            $same_post{$k} = 1 if $in{$k}++;
        }
    }

    my %r = (
        sent         => $o{sent} // scalar(keys %acked),
        acked        => scalar(keys %acked),
        delivered    => scalar(grep { $n{$_} } keys %acked),
        seen         => scalar(keys %n),
        duplicated   => scalar(grep { $n{$_} > 1 } keys %n),
        dup_other_id => [ sort grep { keys %{ $pids{$_} } > 1 } keys %pids ],
        dup_same_post => [ sort keys %same_post ],
        missing      => [ sort grep { !$n{$_} } keys %acked ],
        unacked      => [ sort grep { !$acked{$_} && !$maybe{$_} } keys %n ],
        maybe_delivered => scalar(grep { $maybe{$_} && !$acked{$_} } keys %n),
        maybe        => scalar(grep { !$acked{$_} } keys %maybe),
    );

    return \%r;
}


# wait_delivered(mock => ..., acked => [...], timeout => S, ...): tally()
# every half second until no acked id is missing or the time is up

sub wait_delivered {
    shift if ref $_[0] && ref $_[0] eq __PACKAGE__;
    my (%o) = @_;

    my $deadline = time + ($o{timeout} // 30);
    my $r;
    while (1) {
        $r = tally(%o);
        return $r if !@{ $r->{missing} } || time >= $deadline;
        sleep 0.5;
    }
}


# one line of figures: "outage: sent=600 acked=600 delivered=600
# duplicated=12 (same payload id)", plus what was refused or unanswered

sub figures {
    shift if ref $_[0] && ref $_[0] eq __PACKAGE__;
    my ($name, $r, $load) = @_;

    my $dup = @{ $r->{dup_other_id} }
        ? scalar(@{ $r->{dup_other_id} }) . ' with ANOTHER payload id'
        : 'same payload id';
    my $s = sprintf '%s: sent=%d acked=%d delivered=%d duplicated=%d (%s)',
        $name, $r->{sent}, $r->{acked}, $r->{delivered}, $r->{duplicated},
        $dup;
    if ($load) {
        $s .= sprintf ' refused503=%d', scalar @{ $load->{refused} }
            if @{ $load->{refused} };
        $s .= sprintf ' other=%d', scalar @{ $load->{other} }
            if @{ $load->{other} };
    }
    $s .= sprintf ' noanswer=%d (of which delivered %d)', $r->{maybe},
        $r->{maybe_delivered} if $r->{maybe};
    $s .= sprintf ' MISSING=%d', scalar @{ $r->{missing} }
        if @{ $r->{missing} };
    $s .= sprintf ' UNACKED-DELIVERED=%d', scalar @{ $r->{unacked} }
        if @{ $r->{unacked} };

    return $s;
}


package Test::Ldseg::Load;

use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

my $LOAD_TS = '2019-02-03T04:05:06.007Z';

sub new {
    my ($class, $t, %o) = @_;

    my $self = bless {
        t           => $t,
        name        => $o{name} || 'm',
        clients     => $o{clients} || 1,
        count       => $o{count} || 1_000_000,
        duration    => $o{duration} || 3600,
        interval    => $o{interval} // 0.02,
        per_request => $o{per_request} || 1,
        pad         => $o{pad} || 0,
        timeout     => $o{timeout} || 5,
        path        => $o{path},
        port        => $o{port},
        ports       => $o{ports},
        dir         => $t->testdir,
        pids        => [],
        owner       => $$,
    }, $class;

    unlink $self->_stopfile;

    for my $c (1 .. $self->{clients}) {
        my $file = $self->_file($c);
        unlink $file;
        my $pid = fork();
        die "fork: $!\n" unless defined $pid;
        if ($pid == 0) {
            eval { $self->_client($c, $file) };
            POSIX::_exit(0);
        }
        push @{ $self->{pids} }, $pid;
    }

    return $self;
}


sub _file { "$_[0]{dir}/load-$_[0]{name}-$_[1].txt" }
sub _stopfile { "$_[0]{dir}/load-$_[0]{name}.stop" }


sub _client {
    my ($self, $c, $file) = @_;

    $SIG{ALRM} = sub { POSIX::_exit(0) };
    alarm int($self->{duration} + $self->{timeout} + 60);

    open my $out, '>', $file or die "$file: $!";
    $out->autoflush(1);

    my $J = JSON::PP->new->utf8->canonical;
    my $t = $self->{t};
    my $end = time + $self->{duration};
    my $k = $self->{per_request};
    my $path = $self->{path} || ($k > 1 ? '/v1/batch' : '/v1/track');

    for my $i (1 .. $self->{count}) {
        last if time >= $end || -e $self->_stopfile;

        my @ids = map { "$self->{name}-$c-$i-$_" } 1 .. $k;
        my @msgs = map { {
            type => 'track', userId => "u-$_", event => $_,
            timestamp => $LOAD_TS,
            properties => { n => $i,
                            $self->{pad} ? (pad => 'x' x $self->{pad}) : () },
        } } @ids;

        my $body = $k > 1 || $path =~ m{/b(atch)?$}
            ? $J->encode({ batch => \@msgs }) : $J->encode($msgs[0]);

        my $port = $self->{ports}
            ? $self->{ports}[($c + $i) % @{ $self->{ports} }]
            : $self->{port} // $t->port(8080);

        my $t0 = time;
        my ($code, $h) = $t->http_request(
            method => 'POST', path => $path, body => $body,
            headers => [ 'Content-Type' => 'application/json' ],
            timeout => $self->{timeout}, quiet => 1,
            port => $port);
        my $lat = time - $t0;

        printf $out "%d\t%s\t%.3f\t%.3f\t%s\t%d\t%s\n", $code || 0,
            $h->{'retry-after'} // '-', $lat, $t0, $h->{'x-pid'} // '-',
            $port, join(' ', @ids);

        sleep $self->{interval} if $self->{interval};
    }

    close $out;
}


sub running {
    my ($self) = @_;
    @{ $self->{pids} } = grep { waitpid($_, WNOHANG) == 0 } @{ $self->{pids} };
    return scalar @{ $self->{pids} };
}


sub stop {
    my ($self, $timeout) = @_;
    open my $fh, '>', $self->_stopfile;
    close $fh if $fh;
    return $self->wait($timeout);
}


sub wait {
    my ($self, $timeout) = @_;

    my $deadline = time + ($timeout // $self->{duration} + 60);
    while ($self->running && time < $deadline) {
        sleep 0.1;
    }
    if ($self->running) {
        kill 'KILL', @{ $self->{pids} };
        waitpid($_, 0) for @{ $self->{pids} };
        $self->{pids} = [];
    }

    return $self->results;
}


# results so far (also while the clients run)

sub results {
    my ($self) = @_;

    my %r = (sent => [], acked => [], refused => [], noanswer => [],
             other => [], codes => {}, retry_after => {}, requests => 0,
             max_latency => 0, info => {});

    for my $c (1 .. $self->{clients}) {
        open my $fh, '<', $self->_file($c) or next;
        while (my $l = <$fh>) {
            next unless $l =~ /\n\z/;
            chomp $l;
            my ($code, $ra, $lat, $t0, $pid, $port, $ids)
                = split /\t/, $l, 7;
            my @ids = split / /, $ids;
            $r{info}{$_} = { code => $code, time => $t0, latency => $lat,
                             pid => $pid, port => $port } for @ids;
            $r{requests}++;
            $r{codes}{$code}++;
            $r{max_latency} = $lat if $lat > $r{max_latency};
            push @{ $r{sent} }, @ids;
            if ($code =~ /^2/) {
                push @{ $r{acked} }, @ids;
            } elsif ($code == 503) {
                push @{ $r{refused} }, @ids;
                $r{retry_after}{$ra}++;
            } elsif ($code == 0) {
                push @{ $r{noanswer} }, @ids;
            } else {
                push @{ $r{other} }, @ids;
            }
        }
        close $fh;
    }

    return \%r;
}


sub DESTROY {
    my ($self) = @_;
    local ($?, $@, $!);
    return unless @{ $self->{pids} || [] } && $self->{owner} == $$;
    kill 'KILL', @{ $self->{pids} };
    waitpid($_, 0) for @{ $self->{pids} };
}


package Test::Ldseg;

1;
