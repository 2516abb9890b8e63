"""Tests of masc.maas: grant table and MAAS client."""
