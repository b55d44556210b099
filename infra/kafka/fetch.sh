#!/usr/bin/env bash
# Fetch the Apache Kafka broker jars (KRaft) and their runtime dependencies from Maven Central
# into infra/kafka/libs. Idempotent: a stamp file records the sha256 of pom.xml once the copy
# has completed, so a rerun with an unchanged pom does nothing and an interrupted copy is redone.
# Needs: mvn and java 17+. Usage: infra/kafka/fetch.sh [--force]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
libs="$here/libs"
stamp="$libs/.complete"
want="$(sha256sum pom.xml | cut -d' ' -f1)"

if [[ "${1:-}" != "--force" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
   && compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then
  echo "kafka jars already in $libs"
  exit 0
fi

command -v mvn >/dev/null || { echo "fetch.sh: mvn not found (apt-get install maven)" >&2; exit 1; }
rm -rf "$libs"
mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DoutputDirectory="$libs" -DincludeScope=runtime
compgen -G "$libs/kafka_2.13-*.jar" >/dev/null || { echo "fetch.sh: no kafka jar in $libs" >&2; exit 1; }
echo "$want" > "$stamp"
echo "kafka jars fetched into $libs ($(ls "$libs" | wc -l) files)"
