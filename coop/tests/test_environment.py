"""The machine has what the application needs: the set-up commands must have installed it."""


def test_weasyprint_renders_a_pdf_with_the_installed_pango_and_harfbuzz():
    # Importing weasyprint fails without Pango; writing a PDF with text needs HarfBuzz subsetting.
    from weasyprint import HTML

    pdf = HTML(string="<h1>Statement</h1><p>Balance due: $12.34</p>").write_pdf()
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 1000
