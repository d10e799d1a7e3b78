; Sightline for Windows: a per-user installer (no administrator rights needed).
;
; Build one edition from the repository root, after `python installer\build.py --edition light`:
;   "C:\Program Files (x86)\Inno Setup 6\ISCC.exe" /DEdition=light installer\windows\sightline.iss
;   "C:\Program Files (x86)\Inno Setup 6\ISCC.exe" /DEdition=local installer\windows\sightline.iss
; The setup program is written to build\installers\.
;
; Every page is read aloud by a screen reader, so the texts are short and plain. Both editions share
; one AppId: installing Local AI over Light (or back) replaces the program and keeps the settings.

#ifndef Edition
  #define Edition "light"
#endif
#if Edition == "light"
  #define EditionTitle "Sightline Light"
#elif Edition == "local"
  #define EditionTitle "Sightline Local AI"
#else
  #error Edition must be light or local
#endif
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define Bundle "..\..\build\dist-" + Edition + "\sightline"

[Setup]
AppId={{6F1B3C52-8E0A-4F3D-9C57-2B7A1D4E9F10}
AppName=Sightline
AppVersion={#AppVersion}
AppVerName={#EditionTitle} {#AppVersion}
AppPublisher=Sightline
VersionInfoDescription={#EditionTitle} setup
; Per user: installs under %LOCALAPPDATA%\Programs\Sightline, and never asks for an administrator.
PrivilegesRequired=lowest
DefaultDirName={autopf}\Sightline
DefaultGroupName=Sightline
DisableProgramGroupPage=yes
DisableWelcomePage=no
DisableReadyPage=no
DisableDirPage=auto
AllowNoIcons=no
UninstallDisplayName={#EditionTitle}
UninstallDisplayIcon={app}\Sightline.exe
SetupIconFile=..\..\resources\icons\sightline.ico
WizardStyle=modern
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
; Close a running Sightline before replacing its files, and start it again afterwards if it was open.
CloseApplications=yes
RestartApplications=no
OutputDir=..\..\build\installers
OutputBaseFilename=sightline-{#Edition}-{#AppVersion}-setup
#if Edition == "local"
; The Local AI edition carries the AI runtime (several gigabytes): fast compression, split files.
Compression=lzma2/fast
SolidCompression=no
DiskSpanning=yes
#else
Compression=lzma2/max
SolidCompression=yes
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Messages]
; Shorter than the defaults: a screen reader reads every word of every page.
WelcomeLabel1=Install {#EditionTitle}
WelcomeLabel2=This installs {#EditionTitle} {#AppVersion} for you only. It does not need an administrator.%n%nClose other programs first if you can.
FinishedHeadingLabel=Sightline is installed
FinishedLabelNoIcons=Sightline is installed.
FinishedLabel=Sightline is installed. Find it in the Start menu, or press its keys when it is running.
ClickFinish=Press Finish to close this window.
SelectTasksLabel2=Choose what else to set up, then press Next.
ReadyLabel1=Ready to install.
ReadyLabel2a=Press Install to begin, or Back to change something.
ReadyLabel2b=Press Install to begin.

[CustomMessages]
DesktopIcon=Put a Sightline shortcut on the desktop
StartWithWindows=Start Sightline when I sign in to Windows
StartNow=Start Sightline now
RemoveDataQuestion=Also delete your Sightline settings and the downloaded AI model? Choose No to keep them for later.

[Tasks]
Name: "desktopicon"; Description: "{cm:DesktopIcon}"; Flags: unchecked
Name: "startup"; Description: "{cm:StartWithWindows}"; Flags: unchecked

[Files]
Source: "{#Bundle}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[InstallDelete]
; A different edition installed before: clear its files so the two runtimes never mix.
Type: filesandordirs; Name: "{app}\_internal"

[Icons]
Name: "{autoprograms}\Sightline"; Filename: "{app}\Sightline.exe"; WorkingDir: "{app}"; Comment: "Reads and describes your screen aloud"
Name: "{autodesktop}\Sightline"; Filename: "{app}\Sightline.exe"; WorkingDir: "{app}"; Tasks: desktopicon

[Registry]
; The same value Sightline's own "Start with the system" setting writes, so either can turn it off.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; ValueName: "Sightline"; ValueData: """{app}\Sightline.exe"""; Tasks: startup; Flags: uninsdeletevalue

[Run]
Filename: "{app}\Sightline.exe"; Description: "{cm:StartNow}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
Type: dirifempty; Name: "{app}"

[Code]
var
  RemoveUserData: Boolean;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usUninstall then
  begin
    { One plain question, answered No unless the user chooses Yes; a silent uninstall keeps everything. }
    RemoveUserData := SuppressibleMsgBox(CustomMessage('RemoveDataQuestion'), mbConfirmation,
      MB_YESNO or MB_DEFBUTTON2, IDNO) = IDYES;
  end;
  if CurUninstallStep = usPostUninstall then
  begin
    { Starting at sign-in makes no sense once the program is gone, whoever turned it on. }
    RegDeleteValue(HKCU, 'Software\Microsoft\Windows\CurrentVersion\Run', 'Sightline');
    if RemoveUserData then
      { Settings, logs, cache and the downloaded model: all under %LOCALAPPDATA%\sightline. }
      DelTree(ExpandConstant('{localappdata}\sightline'), True, True, True);
  end;
end;
