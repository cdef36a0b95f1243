"""manage.py knowledge_import PATH [PATH ...]: Markdown files, or folders of them, as knowledge articles."""

import os
from pathlib import Path

from django.core.management.base import CommandError, CommandParser

from conversations.knowledge.services import LINK_REFUSED, ArticleFileError, knowledge_file_import
from conversations.management.base import Need, ServiceCommand


class Command(ServiceCommand):
    # Redis: every process's search is told the articles changed, through the cache.
    needs = (Need.DATABASE, Need.REDIS)
    help = (
        "Import Markdown files, or every *.md file in folders, one article per file: the title is the "
        "first '# ' heading (else the file's name). Importing a file again updates its article."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="a Markdown file or a folder of them")
        parser.add_argument(
            "--draft",
            action="store_true",
            help="new articles start unapproved: the bot ignores them until approved",
        )

    def handle(self, *args: object, paths: list[str], draft: bool, **options: object) -> None:
        imported = updated = 0
        for given in paths:
            for source, path in self._files(given):
                try:
                    created = knowledge_file_import(path=path, source=source, approved=not draft)
                except ArticleFileError as error:
                    self.stderr.write(f"{source}: {error}")
                    continue
                imported += created
                updated += not created
        self.stdout.write(f"{imported} imported, {updated} updated")
        if not imported + updated:
            raise CommandError("No article was imported.")

    def _files(self, given: str) -> list[tuple[str, Path]]:
        """The files `given` names, each with its source: the path as given, plus its path inside a folder.

        Symbolic links are not followed, named or found in a folder (a shell's `kb/*` names what
        is in the folder): a linked folder is not entered, a linked file is refused when read.
        """
        path = Path(given)
        if path.is_symlink():
            self.stderr.write(f"{os.path.normpath(given)}: {LINK_REFUSED}")
            return []
        if not path.is_dir():
            if path.exists():
                return [(os.path.normpath(given), path)]
            self.stderr.write(f"{given}: no such file or folder")
            return []
        found = []
        for folder, folders, files in os.walk(path):
            folders.sort()
            for name in folders:
                if os.path.islink(os.path.join(folder, name)):
                    self.stderr.write(f"{_source(given, path, Path(folder, name))}: {LINK_REFUSED}")
            found += [Path(folder, name) for name in files if name.endswith(".md")]
        if not found:
            self.stderr.write(f"{os.path.normpath(given)}: no *.md file in this folder")
        return [(_source(given, path, file), file) for file in sorted(found)]


def _source(given: str, folder: Path, path: Path) -> str:
    """`path`, found in `folder`, as the operator would write it from the folder's name as given."""
    return os.path.normpath(os.path.join(given, path.relative_to(folder)))
