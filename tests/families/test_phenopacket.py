"""Phenopacket export of a family: the round trip through JSON keeps everything and the strict
reader refuses what the phenopackets v2 schema does not allow."""

from __future__ import annotations

import json

import pytest
from families_support import FamilyStore
from google.protobuf import json_format

from biobank.core.access import Principal, Role
from biobank.core.errors import NotFoundError, ValidationError
from biobank.core.store import Store
from biobank.families.phenopacket import family_phenopacket, from_json, to_json

REGISTRAR = Principal("registrar", Role.REGISTRAR)


def test_family_phenopacket__round_trip_and_content(family_store: FamilyStore) -> None:
    study = family_store.study
    planted = next(p for p in study.planted if p.mode == "recessive")
    with Store(family_store.path) as store:
        message = family_phenopacket(store, REGISTRAR, planted.family_id)
        proband = store.con.execute(
            "SELECT participant_id FROM genotype_sample WHERE sample_id = ?",
            [study.sample_ids[planted.child]],
        ).fetchone()
    text = to_json(message)
    back = from_json(text)
    assert back == message
    assert json_format.MessageToDict(back) == json.loads(text)
    assert proband is not None
    assert back.proband.subject.id == proband[0]
    terms = {f.type.id for f in back.proband.phenotypic_features}
    assert terms == set(study.child_terms[study.sample_ids[planted.child]])
    genomic = back.proband.interpretations[0].diagnosis.genomic_interpretations
    first = genomic[0].variant_interpretation.variation_descriptor
    assert (first.vcf_record.chrom, first.vcf_record.pos) == (planted.contig, planted.pos + 1)
    assert first.gene_context.symbol == planted.gene
    assert first.allelic_state.label == "homozygous"
    _, _, kids = study.families[planted.family_id]
    assert len(back.pedigree.persons) == 2 + len(kids)
    assert len(back.relatives) == 1 + len(kids)
    assert back.meta_data.phenopacket_schema_version == "2.0"


def test_from_json__refuses_fields_outside_the_schema(family_store: FamilyStore) -> None:
    with Store(family_store.path) as store:
        text = to_json(family_phenopacket(store, REGISTRAR, "FAM02", top=1))
    data = json.loads(text)
    data["proband"]["subject"]["nationalId"] = "110105198001010011"
    with pytest.raises(ValidationError, match="not a valid phenopackets v2 family"):
        from_json(json.dumps(data))
    del data["proband"]["subject"]["nationalId"]
    data["pedigree"]["persons"][0]["sex"] = "BOTH"
    with pytest.raises(ValidationError, match="not a valid"):
        from_json(json.dumps(data))
    with pytest.raises(ValidationError, match="lacks required field"):
        from_json(json.dumps({"id": "F"}))


def test_family_phenopacket__unknown_family(family_store: FamilyStore) -> None:
    with Store(family_store.path) as store, pytest.raises(NotFoundError, match="no family 'NOPE'"):
        family_phenopacket(store, REGISTRAR, "NOPE")
