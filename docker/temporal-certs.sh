#!/bin/sh
# Makes the certificates of the docker-compose stack's mTLS, once, into DIR (a volume): a CA,
# a certificate for the Temporal server (name `temporal`, also `localhost` and 127.0.0.1 for
# the published port) and one for its clients (strata, the Web UI, the server's own CLI).
# Temporal then refuses every connection without the client certificate, such as a RUN
# step's: it reaches what its worker reaches, but holds no certificate. The CA's key is
# deleted once both are signed, so nothing else can be issued. Usage: temporal-certs.sh DIR
set -eu
dir=${1:?usage: temporal-certs.sh DIR}
if [ -f "$dir/client.pem" ]; then
  echo "temporal-certs: $dir already holds the certificates"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
days=3650
openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days "$days" -subj '/CN=strata compose CA' -keyout ca.key -out ca.pem 2>/dev/null
sign() { # sign NAME SUBJECT EXTENSIONS
  openssl req -newkey rsa:3072 -nodes -sha256 -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -sha256 -days "$days" -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
# The server's certificate serves its internode connections too, as client and as server.
sign server /CN=temporal 'subjectAltName=DNS:temporal,DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth'
sign client /CN=strata 'extendedKeyUsage=clientAuth'
mkdir -p "$dir"
# Readable by the unprivileged users the Temporal images run as; only containers that mount
# the volume see the files.
install -m 0644 ca.pem server.pem server.key client.pem client.key "$dir/"
echo "temporal-certs: made a CA, a server and a client certificate in $dir"
