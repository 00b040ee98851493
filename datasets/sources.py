"""Where each dataset comes from: download URLs, checksums, licences and citations, in one table.

`SOURCES` is read by ``python -m datasets fetch`` (what to download and how to verify it), by
``python -m datasets --licences`` and the README's table, and by the reports' provenance
(:func:`terms`). Each pinned checksum names where it was published; an archive without one gets its
sha256 recorded at its first download (``datasets/checksums.json``, see `datasets.fetch`).

The licence column summarises the terms stated by the named source; the dataset's own page is
authoritative. Nothing here imports more than the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets.base import DatasetError


@dataclass(frozen=True)
class Archive:
    """One downloadable file. `url` is None when it cannot be fetched without a login or a form.

    `hash` is ``"sha256:HEX"`` or ``"md5:HEX"`` (pooch's notation) where a checksum is published,
    with `hash_source` naming where; None means: recorded at the first download.
    """

    name: str
    url: str | None = None
    hash: str | None = None
    hash_source: str = ""
    size: str = ""  # the download size as its source states it ("" = not stated where we looked)


@dataclass(frozen=True)
class Source:
    name: str  # the adapter's registry name
    title: str
    homepage: str
    licence: str
    licence_source: str
    citation: str
    archives: tuple[Archive, ...] = ()
    # how to get the archive by hand (datasets without a stable public URL); {to} and {name} are filled in
    manual: str = ""
    # the one folder of this name to keep when an archive holds several copies of it (Kaggle's LGG archive
    # ships kaggle_3m/ twice); members outside the shallowest copy are not extracted
    single_copy_of: str | None = None
    from_archive: bool = True  # False: not a download at all (generated, or your own folder)

    @property
    def fetchable(self) -> bool:
        return bool(self.archives) and all(a.url for a in self.archives)


_TORCH_EM = "torch_em (github.com/constantinpape/torch-em, torch_em/data/datasets/medical/{})"
_ISIC_BASE = "https://isic-challenge-data.s3.amazonaws.com/2016/"
_ISIC_HASH = (
    "none published (the ISIC challenge data page gives none, torch_em pins only the 2018 archives): "
    "recorded at the first download"
)


def _isic(part: str) -> Archive:
    name = f"ISBI2016_ISIC_Part1_{part}.zip"
    return Archive(name, _ISIC_BASE + name, None, _ISIC_HASH)


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="kvasir",
            title="Kvasir-SEG",
            homepage="https://datasets.simula.no/kvasir-seg/",
            archives=(
                Archive(
                    "kvasir-seg.zip",
                    "https://datasets.simula.no/downloads/kvasir-seg.zip",
                    "sha256:03b30e21d584e04facf49397a2576738fd626815771afbbf788f74a7153478f7",
                    _TORCH_EM.format("kvasir.py"),
                    "46.2 MB",
                ),
            ),
            licence="free for research and education; commercial use needs the authors' permission",
            licence_source="the dataset's README (github.com/DebeshJha/Kvasir-SEG)",
            citation="Jha et al., Kvasir-SEG: A Segmented Polyp Dataset, MMM 2020, doi:10.1007/978-3-030-37734-2_37",
        ),
        Source(
            name="cvc",
            title="CVC-ClinicDB",
            homepage="https://polyp.grand-challenge.org/CVCClinicDB/",
            manual=(
                "sign in at grand-challenge.org and download the CVC-ClinicDB archive from {homepage} "
                "(Kaggle mirrors exist: any archive with Original/ and 'Ground Truth'/ folders will do)"
            ),
            licence="research use, citing the paper",
            licence_source="not read here: check the dataset page",
            citation=(
                "Bernal et al., WM-DOVA maps for accurate polyp highlighting in colonoscopy, Computerized Medical "
                "Imaging and Graphics 43, 2015, doi:10.1016/j.compmedimag.2015.02.007"
            ),
        ),
        Source(
            name="brain_mri",
            title="Brain-MRI (LGG segmentation, kaggle_3m)",
            homepage="https://www.kaggle.com/datasets/mateuszbuda/lgg-mri-segmentation",
            manual=(
                "log in to Kaggle, then `kaggle datasets download mateuszbuda/lgg-mri-segmentation` (needs "
                "~/.kaggle/kaggle.json) or the Download button on {homepage}"
            ),
            single_copy_of="kaggle_3m",
            licence="CC BY-NC-SA 4.0",
            licence_source="the Kaggle dataset page, as quoted by third parties",
            citation=(
                "Buda, Saha, Mazurowski, Association of genomic subtypes of lower-grade gliomas with shape features "
                "automatically extracted by a deep learning algorithm, Computers in Biology and Medicine 109, 2019, "
                "doi:10.1016/j.compbiomed.2019.05.002"
            ),
        ),
        Source(
            name="isic2016",
            title="ISIC 2016 Task 1 (lesion segmentation)",
            homepage="https://challenge.isic-archive.com/data/#2016",
            archives=(
                _isic("Training_Data"),
                _isic("Training_GroundTruth"),
                _isic("Test_Data"),
                _isic("Test_GroundTruth"),
            ),
            licence="CC0 1.0",
            licence_source="the ISIC 2016 entry of Papers with Code",
            citation=(
                "Gutman et al., Skin Lesion Analysis toward Melanoma Detection: A Challenge at ISBI 2016, hosted by "
                "the ISIC, arXiv:1605.01397"
            ),
        ),
        Source(
            name="ph2",
            title="PH2",
            homepage="https://www.fc.up.pt/addi/ph2%20database.html",
            archives=(Archive("PH2Dataset.rar"),),
            manual=(
                "fill in the registration form on {homepage}; the link you receive gives PH2Dataset.rar "
                "(Kaggle mirrors exist, some as .zip)"
            ),
            licence="free for research and benchmarking, citing the paper",
            licence_source="not read here: check the dataset page",
            citation=(
                "Mendonça et al., PH2 - A dermoscopic image database for research and benchmarking, IEEE EMBC 2013, "
                "doi:10.1109/EMBC.2013.6610779"
            ),
        ),
        Source(
            name="glas",
            title="GlaS (Warwick QU)",
            homepage="https://warwick.ac.uk/fac/cross_fac/tia/data/glascontest/",
            archives=(
                Archive(
                    "warwick_qu_dataset_released_2016_07_08.zip",
                    None,
                    "md5:495b2a9f3d694545fbec06673fb3f40f",
                    "the MD5 that public GlaS loaders pass to torchvision's download_url (not on a Warwick page)",
                ),
            ),
            manual=(
                "download warwick_qu_dataset_released_2016_07_08.zip from {homepage} (the page asks for a university "
                "sign-in) or the Kaggle mirror sani84/glasmiccai2015-gland-segmentation"
            ),
            licence="research purposes only; commercial use is not allowed",
            licence_source="the challenge's data usage terms, as quoted with the Kaggle mirror",
            citation=(
                "Sirinukunwattana et al., Gland segmentation in colon histology images: The GlaS challenge contest, "
                "Medical Image Analysis 35, 2017, doi:10.1016/j.media.2016.08.008"
            ),
        ),
        Source(
            name="tnbc",
            title="TNBC nuclei segmentation",
            homepage="https://zenodo.org/records/1175282",
            archives=(
                Archive(
                    "TNBC_NucleiSegmentation.zip",
                    "https://zenodo.org/records/1175282/files/TNBC_NucleiSegmentation.zip",
                    "sha256:da708c3a988f4ad4b9bbb9283b387faf703f0bc0e5e689927306bd27ea13a57f",
                    _TORCH_EM.format("tnbc.py"),
                ),
            ),
            licence="CC BY 4.0",
            licence_source="the Zenodo record, as quoted by third parties",
            citation=(
                "Naylor et al., Segmentation of Nuclei in Histopathology Images by Deep Regression of the Distance "
                "Map, IEEE TMI 38(2), 2019, doi:10.1109/TMI.2018.2865709"
            ),
        ),
        Source(
            name="synthetic",
            title="Synthetic",
            homepage="",
            manual="generated by the pipeline: dvc repro synthesize (or python -m datasets.synthetic --out {to})",
            from_archive=False,
            licence="generated by this repository (MIT)",
            licence_source="pyproject.toml",
            citation="",
        ),
        Source(
            name="shifted",
            title="Synthetic-shifted",
            homepage="",
            manual=(
                "generated by the pipeline: dvc repro synthesize_shifted "
                "(or python -m datasets.synthetic --domain shifted --out {to})"
            ),
            from_archive=False,
            licence="generated by this repository (MIT)",
            licence_source="pyproject.toml",
            citation="",
        ),
        Source(
            name="folder",
            title="Folder (your own data)",
            homepage="",
            manual="your own data: put images/ and masks/ under {to} (python -m datasets folder shows the tree)",
            from_archive=False,
            licence="yours",
            licence_source="",
            citation="",
        ),
    )
}


def source(name: str) -> Source:
    """The source entry of dataset `name`; DatasetError if there is none."""
    try:
        return SOURCES[name]
    except KeyError:
        raise DatasetError(f"no source entry for dataset {name!r}; known: {', '.join(SOURCES)}") from None


def terms(name: str) -> str:
    """One line for the reports' provenance: the dataset's title, licence and citation."""
    s = SOURCES.get(name)
    if s is None:
        return f"{name}: licence and citation not recorded (datasets/sources.py has no entry)"
    text = f"{name} ({s.title}): {s.licence}"
    return text + (f"; cite {s.citation}" if s.citation else "")


def manual_route(s: Source, to: str) -> str:
    """The steps to get `s` by hand and the command that verifies and unpacks the archive."""
    what = s.manual.format(homepage=s.homepage, to=to, name=s.name)
    if not s.from_archive:
        return what
    archive = s.archives[0].name if len(s.archives) == 1 else "ARCHIVE"
    return f"{what}; then run: python -m datasets fetch {s.name} --from {archive} --to {to}"
