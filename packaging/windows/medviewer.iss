; Inno Setup script for MedViewer (Windows). The GitHub workflow (.github/workflows/package.yml)
; runs it after `python packaging/build.py --edition <edition>`:
;
;   iscc /DEdition=viewer /DAppVersion=0.1.0 /DSourceDir=dist\medviewer-viewer ^
;        /DOutputDir=dist packaging\windows\medviewer.iss
;
; It installs the self-contained folder (nothing is downloaded), a Start menu entry, an
; optional desktop icon and an optional .dcm file association. Silent installs for IT:
; `medviewer-viewer-0.1.0-setup.exe /VERYSILENT /SUPPRESSMSGBOXES /ALLUSERS /TASKS="dicomassoc"`.

#ifndef Edition
  #define Edition "viewer"
#endif
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\medviewer-" + Edition
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif
#if Edition == "studio"
  #define EditionTitle "Studio"
  #define AppGuid "{{6C1B0F7E-3E53-4C57-9F1A-6A0B1D8E2F21}"
#else
  #define EditionTitle "Viewer"
  #define AppGuid "{{0E7C5D54-8B1F-4C0B-A4E2-3B9D2C7A1F10}"
#endif

[Setup]
AppId={#AppGuid}
AppName=MedViewer {#EditionTitle}
AppVersion={#AppVersion}
AppPublisher=MedViewer maintainers
DefaultDirName={autopf}\MedViewer {#EditionTitle}
DefaultGroupName=MedViewer {#EditionTitle}
DisableProgramGroupPage=yes
LicenseFile={#SourceDir}\_internal\LICENSE-MedViewer.txt
OutputDir={#OutputDir}
OutputBaseFilename=medviewer-{#Edition}-{#AppVersion}-setup
SetupIconFile=..\..\resources\icons\medviewer.ico
UninstallDisplayIcon={app}\MedViewer.exe
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequired=admin
PrivilegesRequiredOverridesAllowed=dialog
ChangesAssociations=yes
WizardStyle=modern

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "dicomassoc"; Description: "Open .dcm files with MedViewer {#EditionTitle}"; GroupDescription: "File associations:"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\MedViewer {#EditionTitle}"; Filename: "{app}\MedViewer.exe"
Name: "{group}\MedViewer {#EditionTitle} self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\medviewer-cli.exe"" --self-test"
Name: "{group}\Third-party licences"; Filename: "{app}\_internal\THIRD-PARTY-LICENSES.txt"
Name: "{autodesktop}\MedViewer {#EditionTitle}"; Filename: "{app}\MedViewer.exe"; Tasks: desktopicon

[Registry]
Root: HKA; Subkey: "Software\Classes\.dcm\OpenWithProgids"; ValueType: string; ValueName: "MedViewer.{#Edition}.dcm"; ValueData: ""; Flags: uninsdeletevalue; Tasks: dicomassoc
Root: HKA; Subkey: "Software\Classes\.dcm"; ValueType: string; ValueName: "Content Type"; ValueData: "application/dicom"; Flags: uninsdeletevalue; Tasks: dicomassoc
Root: HKA; Subkey: "Software\Classes\MedViewer.{#Edition}.dcm"; ValueType: string; ValueName: ""; ValueData: "DICOM image"; Flags: uninsdeletekey; Tasks: dicomassoc
Root: HKA; Subkey: "Software\Classes\MedViewer.{#Edition}.dcm\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\MedViewer.exe,0"; Tasks: dicomassoc
Root: HKA; Subkey: "Software\Classes\MedViewer.{#Edition}.dcm\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\MedViewer.exe"" ""%1"""; Tasks: dicomassoc

[Run]
Filename: "{app}\MedViewer.exe"; Description: "{cm:LaunchProgram,MedViewer {#EditionTitle}}"; Flags: nowait postinstall skipifsilent
