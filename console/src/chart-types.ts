export interface Series {
  label: string;
  values: (number | null)[];
  color: string;
  dash?: number[];
  points?: boolean;
  width?: number;
}
