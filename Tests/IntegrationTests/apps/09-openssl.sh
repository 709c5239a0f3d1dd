# openssl: key generation, sign/verify, symmetric enc/dec, digests.
set -eu
mkdir -p /tmp/o && cd /tmp/o
seq 1 100000 > data.txt
openssl dgst -sha256 data.txt | sed 's/.*= //'
openssl dgst -sha512 -r data.txt | cut -c1-32
for alg in RSA EC ED25519; do
    case $alg in
        RSA) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem 2>/dev/null ;;
        EC) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem 2>/dev/null ;;
        ED25519) openssl genpkey -algorithm ED25519 -out key.pem ;;
    esac
    openssl pkey -in key.pem -pubout -out pub.pem
    if [ $alg = ED25519 ]; then
        openssl pkeyutl -sign -inkey key.pem -rawin -in data.txt -out sig.bin
        openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in data.txt -sigfile sig.bin
    else
        openssl dgst -sha256 -sign key.pem -out sig.bin data.txt
        openssl dgst -sha256 -verify pub.pem -signature sig.bin data.txt
    fi
    echo tampered >> data.txt
    if [ $alg = ED25519 ]; then openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in data.txt -sigfile sig.bin || true
    else openssl dgst -sha256 -verify pub.pem -signature sig.bin data.txt || true; fi
    seq 1 100000 > data.txt
done
key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
iv=0f0e0d0c0b0a09080706050403020100
openssl enc -aes-256-cbc -K $key -iv $iv -in data.txt -out data.enc
sha256sum data.enc | cut -c1-16
openssl enc -d -aes-256-cbc -K $key -iv $iv -in data.enc | cmp - data.txt && echo "aes-cbc round trip: ok"
openssl enc -aes-256-ctr -pbkdf2 -pass pass:secret -in data.txt -out data.ctr
openssl enc -d -aes-256-ctr -pbkdf2 -pass pass:secret -in data.ctr | cmp - data.txt && echo "pbkdf2 round trip: ok"
openssl rand -hex 16 | wc -c
openssl req -x509 -new -key key.pem -subj /CN=moat -days 1 -out cert.pem 2>/dev/null
openssl x509 -in cert.pem -noout -subject
