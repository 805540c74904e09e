"""Transforms that are mapping steps (issue 26 item 4): folded into ApplyMapping only when Glue's result is the same.

Each case is a chain source -> transforms -> sink; the frame the sink writes is always named `mapped`.
"""

from __future__ import annotations

from glueflow_dagster.glue_import import CONVERTED, NEEDS_USER, UNSUPPORTED, ImportReport
from glueflow_dagster_tests.glue_import.glue_scripts import SINK, convert, input_script, items, line_of

SOURCE = (
    'src = glueContext.create_dynamic_frame.from_options(connection_type="s3", '
    'connection_options={"paths": ["s3://raw/orders/"]}, format="json")\n'
)
MAPPING = (
    "ApplyMapping.apply(frame=FRAME, mappings=["
    '("id", "string", "order_id", "long"), '
    '("user.id", "int", "user.id", "long"), '
    '("user.country", "string", "user.country", "string"), '
    '("amount", "string", "amount", "double"), '
    '("note", "string", "note", "string")])'
)
ROWS = [
    ["id", "string", "order_id", "long"],
    ["user.id", "int", "user.id", "long"],
    ["user.country", "string", "user.country", "string"],
    ["amount", "string", "amount", "double"],
    ["note", "string", "note", "string"],
]


def chain(*steps: str) -> str:
    """`steps` in order after the source; each reads the frame before it; the last is bound to `mapped`."""
    lines, frame = [SOURCE], "src"
    for index, step in enumerate(steps):
        name = "mapped" if index == len(steps) - 1 else f"f{index}"
        lines.append(f"{name} = {step.replace('FRAME', frame)}\n")
        frame = name
    return input_script("".join(lines)) + SINK


def rows(report: ImportReport) -> list[list[str]]:
    return report.entry["input_job"]["mappings"]


def refused(report: ImportReport, script: str, text: str) -> str:
    [item] = [i for i in items(report, UNSUPPORTED, "input_job.mappings")]
    assert item.line == line_of(script, text), report.table()
    return item.message


def test_select_fields_before_the_mapping_removes_the_tuples_it_does_not_select() -> None:
    script = chain('SelectFields.apply(frame=FRAME, paths=["id", "user"])', MAPPING)
    report = convert(script)
    assert report.complete, report.table()
    assert rows(report) == ROWS[:3]
    [folded] = [i for i in items(report, CONVERTED, "input_job.mappings") if "SelectFields" in i.message]
    assert folded.line == line_of(script, "SelectFields")


def test_drop_fields_after_the_mapping_removes_the_tuples_of_its_targets() -> None:
    report = convert(chain(MAPPING, 'DropFields.apply(FRAME, ["note", "user.country"])'))
    assert report.complete, report.table()
    assert rows(report) == [ROWS[0], ROWS[1], ROWS[3]]
    # The method form, before the mapping, on sources.
    report = convert(chain('FRAME.drop_fields(["amount"])', MAPPING))
    assert rows(report) == [ROWS[0], ROWS[1], ROWS[2], ROWS[4]]


def test_a_path_inside_a_mapped_struct_is_reported() -> None:
    whole = MAPPING.replace(
        '("user.id", "int", "user.id", "long"), ("user.country", "string", "user.country", "string")',
        '("user", "struct", "user", "struct")',
    )
    script = chain('SelectFields.apply(frame=FRAME, paths=["id", "user.id"])', whole)
    assert "changes a mapped struct" in refused(convert(script), script, "SelectFields")


def test_rename_field_after_the_mapping_renames_targets() -> None:
    report = convert(chain(MAPPING, 'RenameField.apply(frame=FRAME, old_name="amount", new_name="total")'))
    assert report.complete, report.table()
    assert rows(report)[3] == ["amount", "string", "total", "double"]
    # A struct renamed: every target inside it follows.
    report = convert(chain(MAPPING, 'FRAME.rename_field("user", "customer")'))
    assert [r[2] for r in rows(report)] == ["order_id", "customer.id", "customer.country", "amount", "note"]


def test_rename_field_that_moves_collides_or_renames_a_source_is_reported() -> None:
    for step, why in (
        ('RenameField.apply(frame=FRAME, old_name="user.country", new_name="country")', "another struct"),
        ('RenameField.apply(frame=FRAME, old_name="amount", new_name="note")', "already a mapped target"),
    ):
        script = chain(MAPPING, step)
        report = convert(script)
        assert why in refused(report, script, "RenameField"), report.table()
        assert not report.complete
    script = chain('RenameField.apply(frame=FRAME, old_name="amt", new_name="amount")', MAPPING)
    assert "renaming a source field" in refused(convert(script), script, "RenameField")


def test_resolve_choice_cast_to_the_target_type_is_the_mappings_own_cast() -> None:
    script = chain(
        'ResolveChoice.apply(frame=FRAME, specs=[("amount", "cast:double"), ("id", "cast:bigint")])', MAPPING
    )
    report = convert(script)
    assert report.complete, report.table()
    assert rows(report) == ROWS
    # A path no tuple reads changes nothing the flow writes.
    assert convert(chain('FRAME.resolveChoice(specs=[("other", "cast:string")])', MAPPING)).complete
    # After the mapping, a cast to the type the target already has.
    assert convert(chain(MAPPING, 'ResolveChoice.apply(FRAME, specs=[("order_id", "cast:long")])')).complete


def test_resolve_choice_that_casts_twice_or_is_not_a_cast_is_reported() -> None:
    for step, why in (
        ('ResolveChoice.apply(frame=FRAME, specs=[("amount", "cast:long")])', "casts twice"),
        ('ResolveChoice.apply(frame=FRAME, specs=[("amount", "make_cols")])', "only cast:<type>"),
        ('ResolveChoice.apply(frame=FRAME, choice="make_struct")', "every choice field"),
        ('ResolveChoice.apply(frame=FRAME, specs=[("user", "cast:string")])', "changes a struct"),
        ('ResolveChoice.apply(frame=FRAME, specs=[("Amount", "cast:double")])', "only by case"),
    ):
        script = chain(step, MAPPING)
        report = convert(script)
        assert why in refused(report, script, "ResolveChoice"), step
        # --allow-partial still has the tuples as written, said so.
        [written] = items(report, NEEDS_USER, "input_job.mappings")
        assert "as written" in written.message and rows(report) == ROWS


def test_drop_null_fields_leaves_the_records_as_they_are() -> None:
    script = chain("DropNullFields.apply(frame=FRAME)", MAPPING, 'DropNullFields.apply(FRAME, "ctx")')
    report = convert(script)
    assert report.complete, report.table()
    assert rows(report) == ROWS
    notes = [i for i in items(report, CONVERTED, "input_job.mappings") if "DropNullFields" in i.message]
    assert len(notes) == 2 and "NullType" in notes[0].message


def test_transforms_fold_in_order() -> None:
    script = chain(
        'SelectFields.apply(frame=FRAME, paths=["id", "amount", "note"])',
        MAPPING,
        'RenameField.apply(FRAME, "note", "comment")',
        'DropFields.apply(FRAME, ["amount"])',
    )
    report = convert(script)
    assert report.complete, report.table()
    assert rows(report) == [ROWS[0], ["note", "string", "comment", "string"]]
    # Selecting nothing that is mapped leaves no flow.
    script = chain('SelectFields.apply(frame=FRAME, paths=["other"])', MAPPING)
    assert not convert(script).complete


def test_glue_studio_data_quality_is_reported_with_its_asset_check() -> None:
    script = (
        input_script(
            '''
        DEFAULT_DATA_QUALITY_RULESET = """
            Rules = [
                ColumnCount > 0
            ]
        """
        '''
        )
        + chain(MAPPING).split('job.init(args["JOB_NAME"], args)\n', 1)[1]
    )
    script = script.replace(
        "\nglueContext.write_dynamic_frame",
        "\nEvaluateDataQuality().process_rows(frame=mapped, ruleset=DEFAULT_DATA_QUALITY_RULESET, "
        'publishing_options={"dataQualityEvaluationContext": "EvaluateDataQuality_node1", '
        '"enableDataQualityResultsPublishing": True}, additional_options={"observations.scope": "ALL"})\n'
        "glueContext.write_dynamic_frame",
        1,
    )
    report = convert(script)
    assert report.complete, report.table()
    [check] = items(report, NEEDS_USER, "data quality")
    assert check.line == line_of(script, "EvaluateDataQuality()") and "asset check on orders/staging" in check.message
    assert check.value == "Rules = [ ColumnCount > 0 ]"
    # Writing the outcomes instead of the data is not the same job.
    outcomes = script.replace("EvaluateDataQuality().process_rows(", "mapped = EvaluateDataQuality.apply(")
    report = convert(outcomes)
    assert [i for i in items(report, UNSUPPORTED, "step") if "data quality outcomes" in i.message]


def test_data_quality_on_a_frame_not_written_is_still_reported() -> None:
    script = chain(MAPPING).replace(
        "\nglueContext.write_dynamic_frame",
        '\nside = SelectFields.apply(frame=src, paths=["id"])\n'
        'EvaluateDataQuality().process_rows(frame=side, ruleset="Rules = [ RowCount > 0 ]")\n'
        "glueContext.write_dynamic_frame",
        1,
    )
    report = convert(script)
    [check] = items(report, NEEDS_USER, "data quality")
    assert check.line == line_of(script, "EvaluateDataQuality()") and check.value == "Rules = [ RowCount > 0 ]"


def test_a_transform_with_no_mapping_or_no_sink_is_reported_at_its_line() -> None:
    no_mapping = chain('SelectFields.apply(frame=FRAME, paths=["id"])')
    report = convert(no_mapping)
    assert [i for i in items(report, UNSUPPORTED, "step") if i.line == line_of(no_mapping, "SelectFields")]
    no_sink = input_script(SOURCE + 'kept = DropFields.apply(frame=src, paths=["id"])\n')
    report = convert(no_sink)
    assert [i for i in items(report, UNSUPPORTED, "step") if i.line == line_of(no_sink, "DropFields")]
