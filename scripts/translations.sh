#!/usr/bin/env bash
# The Babel catalogs in portal/translations: English is the source, Spanish (es) is
# translated for every patient-facing string (tests/unit/test_translations.py checks).
#
#   bash scripts/translations.sh compile   .po -> .mo; scripts/run.sh and scripts/test.sh
#                                           run it, so a fresh clone serves Spanish
#   bash scripts/translations.sh update    after changing marked strings: extract them
#                                           into messages.pot and merge them into each
#                                           language's messages.po, for a translator
set -euo pipefail
cd "$(dirname "$0")/.."
pybabel=.venv/bin/pybabel
catalogs=portal/translations

case "${1:-compile}" in
  compile)
    # Fuzzy (unchecked) translations are left out: those strings show in English.
    "$pybabel" compile -d "$catalogs"
    ;;
  update)
    # --ignore-dirs: Babel skips folders starting with "_" by default, which would
    # leave out templates/_macros (every form's error summary).
    "$pybabel" extract -F babel.cfg -k _l -k lazy_gettext --sort-by-file \
      --ignore-dirs=".* __pycache__" \
      --project="Referral portal" --copyright-holder="The referral portal's authors" \
      -o "$catalogs/messages.pot" .
    "$pybabel" update --no-fuzzy-matching -i "$catalogs/messages.pot" -d "$catalogs"
    ;;
  *)
    echo "usage: $0 [compile|update]" >&2
    exit 2
    ;;
esac
